"""Training objectives: MSE, the VGG16 perceptual loss, edge and SSIM terms.

Module map:

* ``objective`` -- the configured objective (:func:`build_objective`, :class:`LossConfig`).
* ``perceptual`` -- the VGG16 feature loss on windowed CT; ``vgg`` -- the frozen extractor
  with named taps; ``weights`` -- where VGG16 weights live, verified and loaded.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.losses.objective import LossConfig, PerceptualConfig, build_objective
    from pipeline.losses.perceptual import PerceptualLoss, gram_matrix, windows_to_rgb
    from pipeline.losses.vgg import VGG16Features
    from pipeline.losses.weights import (
        load_imagenet_features,
        random_features_state,
        weights_status,
    )

_EXPORTS: dict[str, tuple[str, ...]] = {
    "objective": ("LossConfig", "PerceptualConfig", "build_objective"),
    "perceptual": ("PerceptualLoss", "gram_matrix", "windows_to_rgb"),
    "vgg": ("VGG16Features",),
    "weights": ("load_imagenet_features", "random_features_state", "weights_status"),
}

__all__ = [
    "LossConfig",
    "PerceptualConfig",
    "PerceptualLoss",
    "VGG16Features",
    "build_objective",
    "gram_matrix",
    "load_imagenet_features",
    "random_features_state",
    "weights_status",
    "windows_to_rgb",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
