"""The training configuration: ``data`` + ``model`` + ``loss`` sections + loop settings.

``ldct train --config configs/X.yaml --set optim.lr=1e-4`` builds one :class:`TrainConfig`
(defaults < file < overrides, unknown keys are errors). Sections are owned by their packages:
:class:`~pipeline.data.config.DataConfig` (pairs, splits, patch/batch size, workers),
:class:`~pipeline.models.registry.ModelConfig` (name + params),
:class:`~pipeline.losses.objective.LossConfig` (MSE + perceptual, VGG weights choice); the loop
settings are :class:`~pipeline.train.settings.LoopConfig`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from pipeline.config import load_config
from pipeline.data.config import DataConfig
from pipeline.losses.objective import LossConfig
from pipeline.models.registry import ModelConfig
from pipeline.train.settings import LoopConfig


class TrainConfig(LoopConfig):
    """A complete, validated training job."""

    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=lambda: LossConfig.model_validate({}))
    init_weights: Path | None = Field(
        None,
        description="start from this model checkpoint's weights (same model name and params), "
        "e.g. to fine-tune a trained model with another objective; optimizer state starts fresh",
    )


def load_train_config(path: str | Path | None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a YAML training config with ``key.sub=value`` overrides (ConfigError when invalid).

    Relative paths in the file (data root, output folder, ...) are taken relative to the
    current directory, like paths on the command line.
    """
    return load_config(TrainConfig, path, overrides)
