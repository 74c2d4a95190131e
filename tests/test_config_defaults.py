"""Shipped YAML files that state a command's defaults equal the config models' defaults.

``configs/denoise.yaml`` and ``configs/report.yaml`` are documented as the defaults of
``ldct denoise`` / ``ldct report``: every field of the model appears in the file (a field added in
code is added there) and the file loads to exactly the model's defaults (a changed default is
changed there). The ``train_*.yaml`` files are training recipes, not defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from pipeline.config import load_config
from pipeline.infer.config import DenoiseConfig
from pipeline.report.config import ReportConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEFAULTS: dict[str, type[BaseModel]] = {"denoise.yaml": DenoiseConfig, "report.yaml": ReportConfig}


def _missing_keys(stated: Any, defaults: Any, prefix: str = "") -> list[str]:
    """Dotted keys of ``defaults`` (a JSON dump) that the YAML mapping ``stated`` leaves out."""
    if not isinstance(defaults, dict):
        return []
    if not isinstance(stated, dict):
        return [prefix.rstrip(".")]
    out = []
    for key, value in defaults.items():
        if key not in stated:
            out.append(prefix + key)
        else:
            out += _missing_keys(stated[key], value, f"{prefix}{key}.")
    return out


def test_every_non_recipe_config_is_checked() -> None:
    shipped = {p.name for p in CONFIGS.glob("*.yaml") if not p.name.startswith("train_")}
    assert shipped == set(DEFAULTS)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_shipped_defaults_equal_the_model(name: str) -> None:
    model = DEFAULTS[name]
    path = CONFIGS / name
    stated = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert _missing_keys(stated, model().model_dump(mode="json")) == []
    loaded = load_config(model, path, [])
    assert loaded == model()
    assert loaded.model_dump(mode="json") == model().model_dump(mode="json")


def test_missing_keys_finds_a_nested_omission() -> None:
    """The comparison itself: a nested key left out is named with its dotted path."""
    defaults = DenoiseConfig().model_dump(mode="json")
    stated = yaml.safe_load((CONFIGS / "denoise.yaml").read_text(encoding="utf-8"))
    del stated["tiling"]["overlap"]
    del stated["allow_incomplete"]
    assert sorted(_missing_keys(stated, defaults)) == ["allow_incomplete", "tiling.overlap"]
