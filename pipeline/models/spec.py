"""A registered model's description (:class:`ModelSpec`), apart from the registry itself so
that the built-in zoo (:mod:`pipeline.models._builtin`) and the registry do not import each other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, a one-line description and fixed preset parameters."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    preset: dict[str, Any] = field(default_factory=dict)
    #: True when the model upsamples with strided transposed convolutions (checkerboard risk).
    transposed_conv: bool = False

    def defaults(self) -> dict[str, Any]:
        """All keyword parameters of the builder with their effective defaults."""
        sig = inspect.signature(self.builder)
        out = {
            k: p.default
            for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        out.update(self.preset)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
