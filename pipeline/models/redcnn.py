"""RED-CNN (Chen et al. 2017): residual encoder-decoder baseline, as its public code runs it.

Five 5x5 "valid" convs (96 channels) shrink the image by 4 pixels each; five stride-1 5x5
transposed convs grow it back, with three residual shortcuts (input, after conv2, after conv4)
and ReLUs; the final ReLU is kept as in the public code. Stride 1 everywhere, so the transposed
convs do not cause checkerboard artifacts. Used as the plain-MSE baseline and as the speed
reference in ``benchmarks/bench_models.py`` (~1 TFLOP per 512x512 slice).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import LdctError
from pipeline.utils.shapes import check_shape


class REDCNN(nn.Module):
    """RED-CNN with ``channels`` feature maps (96 in the reference) and 5x5 kernels."""

    def __init__(self, channels: int = 96, final_relu: bool = True) -> None:
        super().__init__()
        ch = channels
        self.final_relu = final_relu
        self.enc = nn.ModuleList([nn.Conv2d(1 if i == 0 else ch, ch, 5) for i in range(5)])
        self.dec = nn.ModuleList([nn.ConvTranspose2d(ch, 1 if i == 4 else ch, 5) for i in range(5)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape("redcnn input", x, ("B", 1, "H", "W"))
        if min(x.shape[-2:]) < 21:
            raise LdctError(f"redcnn needs H, W >= 21 (five valid 5x5 convs), found {x.shape}")
        skips = [x]
        h = x
        for i, conv in enumerate(self.enc):
            h = F.relu(conv(h))
            if i in (1, 3):
                skips.append(h)
        for i, deconv in enumerate(self.dec):
            h = deconv(h if i == 0 else F.relu(h))
            if i == 0:
                h = h + skips[2]
            elif i == 2:
                h = h + skips[1]
        h = h + skips[0]
        return F.relu(h) if self.final_relu else h
