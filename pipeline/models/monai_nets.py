"""MONAI-backbone denoisers with the Sobel edge layer in front.

``EdgeUNet`` wraps :class:`monai.networks.nets.BasicUNet` (2-D, four 2x poolings): the input and
its four Sobel maps go in, a correction comes out and is added to the input (residual, final conv
zero-initialised so the untrained net is the identity). Inputs of any size are reflect-padded to a
multiple of 16 and cropped back exactly.

Upsampling: ``"nontrainable"`` (bilinear interpolation, then convs; the default) or
``"pixelshuffle"`` are free of the checkerboard pattern of strided transposed convolutions.
``"deconv"`` (stride-2 transposed conv) is offered only through the deliberately artifact-prone
registry entry ``unet-deconv``, which the evaluation tests use to exercise the grid-artifact
detector. BatchNorm (not MONAI's default InstanceNorm) keeps statistics identical between
training patches and whole-slice inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.sobel import SobelEdges
from pipeline.utils.shapes import check_shape

UPSAMPLE_MODES = ("nontrainable", "pixelshuffle", "deconv")
_DIVISOR = 16  # BasicUNet pools four times


def pad_to_multiple(x: torch.Tensor, k: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B,C,H,W) at bottom/right to multiples of ``k`` (reflect, replicate when too small)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % k, (-w) % k
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


class EdgeUNet(nn.Module):
    """Sobel edge layer + MONAI BasicUNet backbone, residual output, any input size.

    Args:
        features: BasicUNet feature widths (6 numbers: 5 encoder levels + final decoder).
        upsample: ``"nontrainable"``, ``"pixelshuffle"`` or ``"deconv"`` (checkerboard-prone).
        trainable_edges: learnable per-direction Sobel scale.
        residual: return ``x + residual_scale * f(x)`` with a zero-initialised final conv.
        residual_scale: fixed factor on the correction. CT noise is ~0.005 of the model range, so
            with unit scale one Adam step (lr 1e-3) on the final conv moves the output by tens
            of HU and training oscillates; 0.03 puts the correction's step size at ~1 HU.
    """

    def __init__(
        self,
        features: Sequence[int] = (16, 32, 64, 128, 256, 16),
        upsample: str = "nontrainable",
        trainable_edges: bool = False,
        residual: bool = True,
        residual_scale: float = 1.0,
    ) -> None:
        from monai.networks.nets import BasicUNet  # lazy: importing MONAI takes seconds

        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample must be one of {UPSAMPLE_MODES}, found {upsample!r}")
        if len(features) != 6:
            raise ConfigError(f"features needs 6 widths, found {list(features)}")
        if not residual_scale > 0:
            raise ConfigError(f"residual_scale must be > 0, found {residual_scale}")
        self.upsample = upsample
        self.residual = residual
        self.residual_scale = float(residual_scale)
        self.edges = SobelEdges(trainable=trainable_edges, concat_input=True)
        self.unet = BasicUNet(
            spatial_dims=2,
            in_channels=5,
            out_channels=1,
            features=tuple(features),
            act=("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
            norm=("batch", {"affine": True}),
            upsample=upsample,
        )
        if residual:
            final = self.unet.final_conv
            nn.init.zeros_(final.weight)
            if final.bias is not None:
                nn.init.zeros_(final.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape("unet input", x, ("B", 1, "H", "W"))
        xp, (h, w) = pad_to_multiple(x, _DIVISOR)
        y = self.unet(self.edges(xp))[..., :h, :w]
        return x + self.residual_scale * y if self.residual else y
