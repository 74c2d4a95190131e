"""Inference-only fast form of DRL-E: BN folded, conv+ReLU fused, concatenations removed.

Profiling DRL-E in bf16 channels-last on CPU showed ~40 % of the time outside the convolutions:
separate ReLU passes and the two feature concatenations (memory copies). This module computes the
same function with

* BatchNorm folded into the preceding conv (eval statistics),
* ReLU fused into the conv via oneDNN post-ops (``torch.ops.mkldnn._convolution_pointwise``),
* ``conv(cat[a, b])`` rewritten as ``conv_a(a) + conv_b(b)`` with the add+ReLU fused into the
  second conv, so no concatenated tensor is ever materialised.

The oneDNN ops are private PyTorch API: they are used only where
:mod:`pipeline.models.capability` ran them successfully for the compute dtype (on AVX2-only CPUs
the op exists but refuses bf16); elsewhere the same math runs through ``F.conv2d`` (tested
equal). The residual addition is done in fp32, so bf16 never quantises the input image itself.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from pipeline.models.capability import capability
from pipeline.models.drle import DRLE
from pipeline.models.sobel import SobelEdges, sobel_edges


def use_fused_kernels(device: torch.device, dtype: torch.dtype) -> bool:
    """True when the private oneDNN post-op kernels were probed and run here for ``dtype``."""
    return device.type == "cpu" and capability(device).fused(dtype).runs


def fold_conv_bn(block: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a (Conv2d[, BatchNorm2d], ReLU) block with the BN (eval) folded in."""
    if not (isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d)):
        raise TypeError(f"expected a Sequential starting with Conv2d, found {type(block)}")
    conv: nn.Conv2d = block[0]
    if len(block) > 1 and isinstance(block[1], nn.BatchNorm2d):
        conv = fuse_conv_bn_eval(conv.eval(), block[1].eval())
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    return conv.weight.detach().to(dtype), bias.detach().to(dtype)


def _first_child(module: nn.Module) -> tuple[nn.Module, str] | None:
    """``(parent, name)`` of the first child of a Sequential (how MONAI's ADN holds its norm)."""
    if isinstance(module, nn.Sequential) and len(module) > 0:
        return module, next(iter(module._modules))
    return None


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into it, in place.

    Handles ``Sequential(conv, bn, ...)`` and MONAI's ``Convolution(conv, ADN(N=bn, ...))``
    (BasicUNet, UNet); each folded BN becomes an ``Identity``. Returns how many were folded.
    Exact up to float rounding (tested against the unfolded model).
    """
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in itertools.pairwise(names):
            conv, nxt = seq._modules[a], seq._modules[b]
            if not isinstance(conv, nn.Conv2d) or nxt is None:
                continue
            where = (seq, b) if isinstance(nxt, nn.BatchNorm2d) else _first_child(nxt)
            if where is None:
                continue
            parent, key = where
            bn = parent._modules[key]
            if not isinstance(bn, nn.BatchNorm2d) or bn.training or bn.running_mean is None:
                continue
            seq._modules[a] = fuse_conv_bn_eval(conv.eval(), bn)
            parent._modules[key] = nn.Identity()
            folded += 1
    return folded


class _Conv:
    """Weights and geometry of one conv, stored in the compute dtype and channels-last."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> None:
        self.weight = weight.contiguous(memory_format=torch.channels_last)
        self.bias = bias
        k = weight.shape[-1]
        self.dilation = dilation
        self.padding = dilation * (k // 2)

    def __call__(
        self, x: torch.Tensor, relu: bool, add: torch.Tensor | None = None, fast: bool = True
    ) -> torch.Tensor:
        pad, dil = [self.padding] * 2, [self.dilation] * 2
        if fast:
            ops = torch.ops.mkldnn._convolution_pointwise
            if add is None:
                attr = "relu" if relu else "none"
                return ops(x, self.weight, self.bias, pad, [1, 1], dil, 1, attr, [], "")
            unary = "relu" if relu else None
            return ops.binary(
                x, add, self.weight, self.bias, pad, [1, 1], dil, 1, "add", None, unary, [], ""
            )
        y = F.conv2d(x, self.weight, self.bias, padding=pad, dilation=dil)
        if add is not None:
            y = y + add
        return F.relu(y) if relu else y


class FusedDRLE(nn.Module):
    """Inference-only equivalent of a :class:`DRLE` in ``dtype``; input/output (B,1,H,W) fp32.

    Built on the device the source model lives on (weights are copied, not registered).
    """

    def __init__(self, model: DRLE, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        model = model.eval()
        self.dtype = dtype
        self.residual = model.residual
        self.edge_kernels: torch.Tensor | None = None
        edges = model.edges
        if isinstance(edges, SobelEdges):
            k = edges.kernels.detach()
            if edges.scale is not None:
                k = k * edges.scale.detach().view(-1, 1, 1, 1)
            self.edge_kernels = k.to(dtype)
        c = {i: fold_conv_bn(getattr(model, f"conv{i}"), dtype) for i in range(1, 7)}
        ch = c[1][0].shape[0]
        with torch.no_grad():
            self.c1 = _Conv(*c[1], 1)
            self.mid = [_Conv(*c[i], d) for i, d in zip((2, 3, 4, 5), (2, 3, 4, 3), strict=True)]
            w6, b6 = c[6]
            self.c6_a = _Conv(w6[:, :ch], b6, 2)  # applied to c5
            self.c6_b = _Conv(w6[:, ch:], None, 2)  # applied to c2, + c6_a, ReLU
            wo, bo = fold_conv_bn(nn.Sequential(model.out), dtype)
            self.out_c6 = _Conv(wo[:, :ch], bo, 1)
            self.out_c1 = _Conv(wo[:, ch : 2 * ch], None, 1)
            self.out_e = _Conv(wo[:, 2 * ch :], None, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = use_fused_kernels(x.device, self.dtype)
        xb = x.to(self.dtype)
        if self.edge_kernels is not None:
            e = torch.cat([xb, sobel_edges(xb, self.edge_kernels)], dim=1)
        else:
            e = xb
        e = e.contiguous(memory_format=torch.channels_last)
        c1 = self.c1(e, relu=True, fast=fast)
        c2 = self.mid[0](c1, relu=True, fast=fast)
        h = c2
        for conv in self.mid[1:]:
            h = conv(h, relu=True, fast=fast)
        t = self.c6_a(h, relu=False, fast=fast)
        c6 = self.c6_b(c2, relu=True, add=t, fast=fast)
        # the three 1-channel partial outputs are summed in fp32: one bf16 rounding each
        # instead of rounding the running sum (halves the HU error, costs ~nothing)
        y = self.out_c6(c6, relu=False, fast=fast).to(x.dtype)
        y = y + self.out_c1(c1, relu=False, fast=fast).to(x.dtype)
        y = (y + self.out_e(e, relu=False, fast=fast).to(x.dtype)).contiguous()
        return x + y if self.residual else y
