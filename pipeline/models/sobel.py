"""Sobel edge-detection layer: four fixed 3x3 directional kernels with reflect padding.

The reference method (Gholizadeh-Ansari et al. 2020) feeds the network the input image plus four
Sobel edge maps (horizontal, vertical and the two diagonals). The kernels are fixed; EDCNN
(Liang et al. 2020) makes the edge layer trainable through a learnable scale per direction,
offered here behind ``trainable=True`` (the kernels themselves still never train).

Conventions: cross-correlation (as ``torch.nn.functional.conv2d``), rows = y (down), cols = x
(right). For an image ``f = a*x + b*y`` the responses away from the border are exactly
``8a`` (horizontal), ``8b`` (vertical), ``6(a+b)`` (diagonal, towards +x+y) and ``6(a-b)``
(anti-diagonal, towards +x-y, i.e. up-right). The directional maps are linear in the input, so
their gradients are exact; :func:`sobel_magnitude` uses ``sqrt(g^2 + eps)``, finite gradient at 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import LdctError

#: Names of the four directions, in channel order.
SOBEL_DIRECTIONS: tuple[str, ...] = ("horizontal", "vertical", "diagonal", "antidiagonal")


def sobel_kernels(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The four 3x3 Sobel kernels as a (4, 1, 3, 3) tensor (order of :data:`SOBEL_DIRECTIONS`)."""
    k = torch.tensor(
        [
            [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],  # d/dx
            [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],  # d/dy
            [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]],  # along +x+y
            [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],  # along +x-y
        ],
        dtype=dtype,
    )
    return k.unsqueeze(1)


def _check_input(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"sobel: expected a (B, C, H, W) tensor, found shape {tuple(x.shape)}")
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise LdctError(f"sobel: reflect padding needs H, W >= 2, found {tuple(x.shape[-2:])}")


def sobel_edges(
    x: torch.Tensor, kernels: torch.Tensor | None = None, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Directional Sobel responses of every channel: (B, C, H, W) -> (B, 4C, H, W).

    Output channel ``4c + d`` is direction ``d`` of input channel ``c``. ``kernels`` defaults to
    :func:`sobel_kernels`; ``scale`` (shape (4,)) multiplies each direction (trainable variant).
    """
    _check_input(x)
    c = x.shape[1]
    k = sobel_kernels(x.dtype).to(x.device) if kernels is None else kernels.to(x.dtype)
    if scale is not None:
        k = k * scale.to(k.dtype).view(-1, 1, 1, 1)
    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
    weight = k.repeat(c, 1, 1, 1)  # (4C, 1, 3, 3), grouped per input channel
    return F.conv2d(xp, weight, groups=c)


def sobel_magnitude(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Gradient magnitude from the horizontal and vertical maps: (B, C, H, W) -> (B, C, H, W).

    ``sqrt(gx^2 + gy^2 + eps)``: the ``eps`` keeps the gradient finite on flat regions.
    """
    e = sobel_edges(x)
    b, c4, h, w = e.shape
    e = e.view(b, c4 // 4, 4, h, w)
    return torch.sqrt(e[:, :, 0] ** 2 + e[:, :, 1] ** 2 + eps)


class SobelEdges(nn.Module):
    """Module form of :func:`sobel_edges`; kernels are a buffer (saved, moved, never trained).

    ``trainable=True`` adds a learnable per-direction scale (initialised to 1), as in EDCNN.
    ``concat_input=True`` returns ``cat([x, edges])`` (the reference network's input).
    """

    kernels: torch.Tensor

    def __init__(self, trainable: bool = False, concat_input: bool = False) -> None:
        super().__init__()
        self.trainable = trainable
        self.concat_input = concat_input
        self.register_buffer("kernels", sobel_kernels(), persistent=True)
        self.scale: nn.Parameter | None = (
            nn.Parameter(torch.ones(len(SOBEL_DIRECTIONS))) if trainable else None
        )

    def out_channels(self, in_channels: int) -> int:
        """Number of output channels for ``in_channels`` input channels."""
        return in_channels * len(SOBEL_DIRECTIONS) + (in_channels if self.concat_input else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        edges = sobel_edges(x, self.kernels, self.scale)
        return torch.cat([x, edges], dim=1) if self.concat_input else edges

    def extra_repr(self) -> str:
        return f"trainable={self.trainable}, concat_input={self.concat_input}"
