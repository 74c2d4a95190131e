"""Model registry: every denoiser is built by name from plain config data.

``build_model("drle", channels=64)`` builds a model; unknown names or parameters raise
:class:`~pipeline.errors.ConfigError` with a "did you mean" hint. :func:`list_models` reports the
parameter count and GFLOPs per 512x512 slice of each registered model (with default parameters).
A config section :class:`ModelConfig` (``name`` + ``params``) is what training saves in
checkpoints and what denoising rebuilds from.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field
from torch import nn

from pipeline.config import StrictModel
from pipeline.errors import ConfigError
from pipeline.models import _builtin
from pipeline.models.spec import ModelSpec

#: The model a training config gets when it names none (the reference method; docs/models.md).
DEFAULT_MODEL = "drle"
#: The network of the bundled checkpoint, ``ldct denoise``'s default (a test keeps them equal).
BUNDLED_MODEL = "unet-nn-s"


@dataclass(frozen=True)
class ModelInfo:
    """What ``ldct models`` prints for one model."""

    name: str
    description: str
    n_params: int
    gflops_512: float
    default: bool  # the training default (ModelConfig's name when a config names none)
    transposed_conv: bool
    bundled: bool = False  # the network of the bundled checkpoint (ldct denoise's default)


class ModelConfig(StrictModel):
    """Config section naming a model and its parameters (saved with every checkpoint)."""

    name: str = DEFAULT_MODEL
    params: dict[str, Any] = Field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


_BUILTIN_LOADED: list[bool] = []


def _ensure_builtin() -> None:
    """Register the built-in zoo once, whatever was registered before it (custom models)."""
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED.append(True)
        _builtin.register_all(register_model)


def model_names() -> list[str]:
    """Registered model names, sorted."""
    _ensure_builtin()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; ConfigError with suggestions for an unknown name."""
    _ensure_builtin()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"unknown model {name!r}{hint} (available: {', '.join(sorted(_REGISTRY))})"
        )
    return _REGISTRY[name]


def resolve_params(name: str, **params: Any) -> dict[str, Any]:
    """Full parameter set (defaults + preset + given) of a model; rejects unknown keys."""
    spec = get_spec(name)
    allowed = spec.defaults()
    for key in params:
        if key not in allowed or key in spec.preset:
            free = sorted(k for k in allowed if k not in spec.preset)
            close = difflib.get_close_matches(key, free, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"model {name!r} has no parameter {key!r}{hint} (parameters: {', '.join(free)})"
            )
    return {**allowed, **params}


def build_model(name: str = DEFAULT_MODEL, **params: Any) -> nn.Module:
    """Build a registered model by name; ``params`` override its defaults."""
    full = resolve_params(name, **params)
    spec = get_spec(name)
    try:
        return spec.builder(**full)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name!r}: invalid parameters {params}: {exc}") from exc


def build_from_config(cfg: ModelConfig | dict[str, Any]) -> nn.Module:
    """Build from a :class:`ModelConfig` or its dict form ``{"name": ..., "params": {...}}``."""
    c = cfg if isinstance(cfg, ModelConfig) else ModelConfig.model_validate(cfg)
    return build_model(c.name, **c.params)


def list_models(size: int = 512) -> list[ModelInfo]:
    """Every registered model with parameter count and GFLOPs per ``size`` x ``size`` slice."""
    return list(_list_models_cached(size, tuple(model_names())))


@functools.lru_cache(maxsize=4)
def _list_models_cached(size: int, names: tuple[str, ...]) -> tuple[ModelInfo, ...]:
    from pipeline.models.flops import count_parameters, gflops_per_slice

    out = []
    for name in names:
        spec = _REGISTRY[name]
        with torch.device("meta"):  # no weight memory or init time: only shapes are needed
            model = build_model(name)
        out.append(
            ModelInfo(
                name=name,
                description=spec.description,
                n_params=count_parameters(model),
                gflops_512=gflops_per_slice(model, size),
                default=name == DEFAULT_MODEL,
                transposed_conv=spec.transposed_conv,
                bundled=name == BUNDLED_MODEL,
            )
        )
    return tuple(out)
