"""Typed, validated configuration: YAML files -> pydantic models, with CLI overrides.

Precedence is defaults < file < ``--set key.sub=value`` overrides. Every run saves its
resolved configuration (:func:`save_resolved`) next to its outputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.errors import ConfigError
from pipeline.utils.files import read_text

T = TypeVar("T", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (``1e-3`` -> float, ``[1,2]`` -> list)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted-key overrides applied."""
    out = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {p!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    p = Path(path)
    text = read_text(p, "config file", ConfigError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=p) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping, found {type(data).__name__}", path=p)
    return data


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Build a validated config of type ``cls`` from defaults, a YAML file and overrides."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data.update(read_yaml(path))
    data = apply_overrides(data, overrides)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path is not None else ""
        lines = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "<root>"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(f"{where}invalid {cls.__name__}:\n" + "\n".join(lines)) from exc


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """Plain-data (JSON-compatible) form of a config."""
    return cfg.model_dump(mode="json")


def config_hash(cfg: BaseModel) -> str:
    """Stable short hash of a config's resolved values."""
    blob = json.dumps(config_to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_resolved(cfg: BaseModel, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomic: temp file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
    tmp.replace(p)
    return p
