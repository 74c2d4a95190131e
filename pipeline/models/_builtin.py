"""The built-in model zoo, registered lazily on first registry use."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.models.drle import DRLE
from pipeline.models.monai_nets import EdgeUNet
from pipeline.models.redcnn import REDCNN
from pipeline.models.spec import ModelSpec


def register_all(register_model: Callable[[ModelSpec], ModelSpec]) -> None:
    """Register every built-in model through ``register_model`` (called once by the registry)."""
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
    register_model(
        ModelSpec(
            "drle-s",
            DRLE,
            "DRL-E, 32 ch: same graph as the reference at 1/4 of the FLOPs (fast CPU option)",
            preset={"channels": 32},
        )
    )
    register_model(
        ModelSpec(
            "unet",
            EdgeUNet,
            "Sobel edges + MONAI BasicUNet (bilinear upsampling, BN), residual",
        )
    )
    register_model(
        ModelSpec(
            "unet-s",
            EdgeUNet,
            "Sobel edges + MONAI BasicUNet, features 8-16-32-64-128 (1/4 of unet's FLOPs), "
            "bilinear upsampling, BN, residual x 0.03",
            preset={"features": (8, 16, 32, 64, 128, 8), "residual_scale": 0.03},
        )
    )
    register_model(
        ModelSpec(
            "unet-nn",
            EdgeUNet,
            "Sobel edges + MONAI BasicUNet on the image in units of its own estimated noise SD "
            "(blind: one net for every dose and kernel), bilinear upsampling, BN, residual",
            preset={"noise_norm": True},
        )
    )
    register_model(
        ModelSpec(
            "unet-nn-s",
            EdgeUNet,
            "unet-nn with features 8-16-32-64-128 (1/4 of its FLOPs): Sobel edges + MONAI "
            "BasicUNet on the image in units of its own estimated noise SD, residual",
            preset={"noise_norm": True, "features": (8, 16, 32, 64, 128, 8)},
        )
    )
    register_model(
        ModelSpec(
            "unet-deconv",
            EdgeUNet,
            "ARTIFACT-PRONE on purpose: unet with stride-2 transposed-conv upsampling "
            "(checkerboard test case for the grid-artifact detector)",
            preset={"upsample": "deconv"},
            transposed_conv=True,
        )
    )
    register_model(
        ModelSpec(
            "redcnn",
            REDCNN,
            "RED-CNN baseline (Chen 2017): 10 layers 5x5, 96 ch, stride-1 conv/deconv, residual",
        )
    )
