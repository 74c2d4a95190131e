"""Parameter and FLOP counting for the model registry.

FLOPs are counted by forward hooks on every convolution and linear layer, as 2 x multiply-adds
(the convention of most papers); element-wise work (BN, ReLU, additions, interpolation) is not
counted because it is negligible next to the convolutions. The forward pass runs on PyTorch's
``meta`` device, so counting a 512x512 slice allocates no memory and takes milliseconds.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; buffers such as the fixed Sobel kernels never count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _layer_flops(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d | nn.Conv3d | nn.Conv1d):
        k = math.prod(module.kernel_size) * (module.in_channels // module.groups)
        return 2 * out.numel() * k
    if isinstance(module, nn.ConvTranspose2d | nn.ConvTranspose3d | nn.ConvTranspose1d):
        # every input pixel scatters a kernel to out_channels/groups outputs
        k = math.prod(module.kernel_size) * (module.out_channels // module.groups)
        return 2 * inp.numel() * k
    if isinstance(module, nn.Linear):
        return 2 * out.numel() * module.in_features
    return 0


def count_flops(model: nn.Module, shape: tuple[int, ...] = (1, 1, 512, 512)) -> int:
    """FLOPs (2 x MACs of conv/linear layers) of one forward pass on an input of ``shape``.

    The model is deep-copied to the meta device, so the caller's weights are untouched.
    """
    meta_model = copy.deepcopy(model).to("meta").eval()
    total = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += _layer_flops(module, args[0], out)

    handles = [m.register_forward_hook(hook) for m in meta_model.modules()]
    try:
        with torch.no_grad():
            meta_model(torch.empty(shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


def gflops_per_slice(model: nn.Module, size: int = 512) -> float:
    """GFLOPs for one ``size`` x ``size`` single-channel slice."""
    return count_flops(model, (1, 1, size, size)) / 1e9
