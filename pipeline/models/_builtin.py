"""The built-in model zoo, registered lazily on first registry use."""

from __future__ import annotations

from pipeline.models.drle import DRLE
from pipeline.models.registry import ModelSpec, register_model


def register_all() -> None:
    """Register every built-in model (called once by the registry)."""
    register_model(
        ModelSpec(
            "drle",
            DRLE,
            "DRL-E reference (Gholizadeh-Ansari 2020): Sobel edges, 7 dilated convs 1-2-3-4-3-2-1, "
            "64 ch, BN, concat skips, residual",
        )
    )
    register_model(
        ModelSpec(
            "drl",
            DRLE,
            "DRL (no edge layer): the reference network without the Sobel input maps",
            preset={"edge": False},
        )
    )
