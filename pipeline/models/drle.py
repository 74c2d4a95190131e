"""DRL-E: the dilated residual network with an edge-detection layer (Gholizadeh-Ansari et al. 2020).

Layout as in the authors' Keras code (see docs/models.md for the diagram)::

    e  = cat[x, sobel(x)]                         (1 + 4 channels)
    c1 = ReLU(conv5x5(e))                         dilation 1, no BN
    c2 = ReLU(BN(conv3x3_d2(c1)))
    c3 = ReLU(BN(conv3x3_d3(c2)))
    c4 = ReLU(BN(conv3x3_d4(c3)))
    c5 = ReLU(BN(conv3x3_d3(c4)))
    c6 = ReLU(BN(conv3x3_d2(cat[c5, c2])))        concatenation skip
    y  = conv3x3(cat[c6, c1, e])                  concatenation skip + edge maps again
    out = x + y   (residual=True)   or   y        (residual=False)

Dilation rates 1-2-3-4-3-2-1, 64 channels, zero "same" padding in the convs, reflect padding in
the edge layer. With ``residual=True`` the last conv is zero-initialised, so the untrained network
is the identity (training starts from "no change" rather than from noise).
Input and output are (B, 1, H, W) in the model range; any H, W >= 2.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.sobel import SobelEdges
from pipeline.utils.shapes import check_shape

#: Dilation rates of the seven conv layers, first (5x5) to last (3x3 output).
DRLE_DILATIONS: tuple[int, ...] = (1, 2, 3, 4, 3, 2, 1)


def _conv_bn_relu(c_in: int, c_out: int, dilation: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=True)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DRLE(nn.Module):
    """The reference DRL-E denoiser; see the module docstring for the layer graph.

    Args:
        channels: feature channels of every hidden layer (64 in the reference).
        edge: prepend the Sobel edge layer (DRL-E); ``False`` gives the plain DRL network.
        trainable_edges: learnable per-direction edge scale (EDCNN-style).
        residual: predict the correction ``y`` and return ``x + y`` (zero-init last conv).
        batch_norm: BatchNorm after the dilated convs, as in the reference.
    """

    def __init__(
        self,
        channels: int = 64,
        edge: bool = True,
        trainable_edges: bool = False,
        residual: bool = True,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ConfigError(f"drle: channels must be >= 1, found {channels}")
        self.residual = residual
        self.edges: nn.Module = (
            SobelEdges(trainable=trainable_edges, concat_input=True) if edge else nn.Identity()
        )
        c_e = 5 if edge else 1
        ch = channels
        self.conv1 = nn.Sequential(nn.Conv2d(c_e, ch, 5, padding=2), nn.ReLU(inplace=True))
        self.conv2 = _conv_bn_relu(ch, ch, 2, batch_norm)
        self.conv3 = _conv_bn_relu(ch, ch, 3, batch_norm)
        self.conv4 = _conv_bn_relu(ch, ch, 4, batch_norm)
        self.conv5 = _conv_bn_relu(ch, ch, 3, batch_norm)
        self.conv6 = _conv_bn_relu(2 * ch, ch, 2, batch_norm)
        self.out = nn.Conv2d(2 * ch + c_e, 1, 3, padding=1)
        if residual:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape("drle input", x, ("B", 1, "H", "W"))
        e = self.edges(x)
        c1 = self.conv1(e)
        c2 = self.conv2(c1)
        c5 = self.conv5(self.conv4(self.conv3(c2)))
        c6 = self.conv6(torch.cat([c5, c2], dim=1))
        y = self.out(torch.cat([c6, c1, e], dim=1))
        return x + y if self.residual else y
