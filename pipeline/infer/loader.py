"""Build a :class:`~pipeline.infer.engine.Denoiser` from a checkpoint (or the bundled demo model).

The model comes from :func:`pipeline.models.checkpoint.load_checkpoint` (weights verified
against their SHA-256); precision from :mod:`pipeline.models.precision` (``auto``: bf16 only
where the hardware runs it fast).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.errors import ConfigError
from pipeline.infer.config import DenoiseConfig
from pipeline.infer.engine import Denoiser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where the model came from (the CLI says so when it is the bundled demo model)."""

    path: Path
    bundled: bool


def resolve_model_path(cfg: DenoiseConfig) -> ModelSource:
    """The checkpoint to use: ``cfg.model`` or the bundled demo model.

    For ``bm3d`` / ``nlm`` (non-learned) the path is the name itself and is never opened; a
    checkpoint file called so is given as ``./bm3d``."""
    if cfg.model:
        return ModelSource(Path(cfg.model), bundled=False)
    from pipeline.models.bundled import bundled_model_path

    return ModelSource(Path(bundled_model_path()), bundled=True)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available (``cuda:$LOCAL_RANK`` under torchrun), else CPU."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = int(os.environ.get("LOCAL_RANK", "0") or 0)
        return torch.device(f"cuda:{local % max(1, torch.cuda.device_count())}")
    return torch.device(name)


def load_denoiser(cfg: DenoiseConfig, source: ModelSource | None = None) -> Denoiser:
    """Load the checkpoint, pick the precision, and wrap both in a :class:`Denoiser`.

    ``cfg.model`` = ``bm3d`` / ``nlm`` gives a :class:`~pipeline.infer.classical.ClassicalDenoiser`
    (CPU, float64; an explicit ``bf16`` precision is refused, as it cannot apply)."""
    from pipeline.models.checkpoint import load_checkpoint
    from pipeline.models.classical import is_classical
    from pipeline.models.envelope import envelope_from_extra

    if is_classical(cfg.model):
        from pipeline.infer.classical import ClassicalDenoiser

        if cfg.precision == "bf16":
            raise ConfigError(f"--precision bf16 does not apply to the non-learned {cfg.model!r}")
        return ClassicalDenoiser(str(cfg.model), cfg.classical)

    src = source or resolve_model_path(cfg)
    device = resolve_device(cfg.device)
    ckpt = load_checkpoint(src.path, map_location="cpu")
    den = make_denoiser(
        ckpt.model,
        cfg,
        device=device,
        name=str(ckpt.model_cfg["name"]),
        version=str(ckpt.meta.get("created_utc") or ckpt.meta.get("package_version") or ""),
        sha256=ckpt.sha256,
    )
    extra = ckpt.meta.get("extra") or {}
    den.envelope = envelope_from_extra(extra)
    vgg = extra.get("vgg_weights") if isinstance(extra, dict) else None
    den.vgg_weights = str(vgg) if vgg not in (None, "") else None
    return den


def make_denoiser(
    model: torch.nn.Module,
    cfg: DenoiseConfig,
    *,
    device: torch.device | None = None,
    name: str = "model",
    version: str = "",
    sha256: str = "",
) -> Denoiser:
    """A :class:`Denoiser` for an in-memory model with the config's precision and batching."""
    from pipeline.models.precision import resolve_precision

    device = device or resolve_device(cfg.device)
    return Denoiser(
        model,
        device=device,
        dtype=resolve_precision(cfg.precision, device, model),
        batch_size=cfg.batch_size,
        tiling=cfg.tiling,
        name=name,
        version=version,
        sha256=sha256,
    )
