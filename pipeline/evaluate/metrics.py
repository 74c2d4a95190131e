"""Full-reference image metrics: PSNR, SSIM, RMSE, MAE, batched in torch.

The project's only implementation of these numbers (evaluation and training validation both
call them). Inputs are ``(B, 1, H, W)`` tensors in whatever units the caller chose (HU, a
window mapped to [0, 1], the model range); the value range is never guessed: ``data_range``
is a required argument. Every function returns one value per image, shape ``(B,)``.

Conventions (checked against scikit-image in ``tests/evaluate/test_eval_metrics.py``):

* ``psnr = 10 log10(data_range**2 / mse)``; an image compared with itself has ``mse == 0``
  and gives ``+inf`` (as skimage does), never an error. Aggregate with care (see runner).
* ``ssim(kernel="gaussian")``: 11x11 Gaussian window, sigma 1.5 (truncate 3.5, as
  ``scipy.ndimage.gaussian_filter``), population covariance; equals
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=R)``. ``kernel="uniform"``: 7x7 box window with the
  sample-covariance correction N/(N-1) = 49/48; equals skimage's default call with
  ``data_range=R``. K1 = 0.01, K2 = 0.03. Like skimage, the mean skips a border of
  ``(win - 1) // 2`` pixels, so the map is computed as a *valid* convolution (no padding).
* ``mask``: optional boolean ``(B or 1, 1, H, W)``. PSNR/RMSE/MAE average over masked pixels;
  SSIM averages its (border-cropped) map over masked pixels whose window centre lies in the
  crop. An empty mask gives NaN.

SSIM is differentiable when an input requires grad (out-of-place path); otherwise a fused
in-place path runs. Computation runs in the input dtype (float32 for speed; pass float64 for
reference-grade numbers). Filters are separable depthwise convolutions in channels-last
layout, the fastest CPU route we measured (see ``benchmarks/bench_metrics.py``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F

from pipeline.errors import LdctError
from pipeline.utils.shapes import check_shape

SsimKernel = Literal["gaussian", "uniform"]

K1 = 0.01
K2 = 0.03
GAUSSIAN_SIGMA = 1.5
GAUSSIAN_TRUNCATE = 3.5
UNIFORM_SIZE = 7


@lru_cache(maxsize=8)
def _kernel_1d(kernel: str, dtype: torch.dtype) -> tuple[torch.Tensor, float]:
    """1-D window weights (summing to 1) and the covariance normalisation for ``kernel``."""
    if kernel == "gaussian":
        radius = int(GAUSSIAN_TRUNCATE * GAUSSIAN_SIGMA + 0.5)  # 5 -> 11 taps, as scipy
        x = torch.arange(-radius, radius + 1, dtype=torch.float64)
        w = torch.exp(-0.5 * (x / GAUSSIAN_SIGMA) ** 2)
        return (w / w.sum()).to(dtype), 1.0
    if kernel == "uniform":
        n = UNIFORM_SIZE
        w = torch.full((n,), 1.0 / n, dtype=torch.float64)
        return w.to(dtype), (n * n) / (n * n - 1.0)
    raise ValueError(f"ssim kernel: expected 'gaussian' or 'uniform', found {kernel!r}")


def window_size(kernel: SsimKernel) -> int:
    """Side length of the SSIM window for ``kernel`` (11 Gaussian, 7 uniform).

    >>> window_size("gaussian"), window_size("uniform")
    (11, 7)
    """
    return int(_kernel_1d(kernel, torch.float64)[0].numel())


def _check_pair(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> None:
    check_shape("pred", pred, ("B", 1, "H", "W"))
    if pred.shape != target.shape:
        raise ValueError(
            f"pred/target: shapes must match, found {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if not (isinstance(data_range, (int, float)) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range: expected a finite number > 0, found {data_range!r}")


def _check_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    check_shape("mask", mask, (None, 1, like.shape[-2], like.shape[-1]))
    if mask.shape[0] not in (1, like.shape[0]):
        raise ValueError(f"mask: batch must be 1 or {like.shape[0]}, found {mask.shape[0]}")
    return mask.to(dtype=torch.bool, device=like.device).expand_as(like)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-image mean over (H, W), restricted to ``mask`` when given; empty mask -> NaN."""
    if mask is None:
        return values.mean(dim=(1, 2, 3))
    m = mask.to(values.dtype)
    return (values * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3))


def mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per image, in squared input units. Shape ``(B,)``."""
    check_shape("pred", pred, ("B", 1, "H", "W"))
    if pred.shape != target.shape:
        raise ValueError(f"pred/target: shapes differ, {tuple(pred.shape)} vs {target.shape}")
    return _masked_mean((pred - target).square(), _check_mask(mask, pred))


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / mse)``; identical -> +inf."""
    _check_pair(pred, target, data_range)
    err = mse(pred, target, mask)
    return 10.0 * torch.log10(data_range**2 / err)


def rmse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Root mean squared error per image, in input units (HU when given HU)."""
    return mse(pred, target, mask).sqrt()


def mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error per image, in input units (HU when given HU)."""
    check_shape("pred", pred, ("B", 1, "H", "W"))
    if pred.shape != target.shape:
        raise ValueError(f"pred/target: shapes differ, {tuple(pred.shape)} vs {target.shape}")
    return _masked_mean((pred - target).abs(), _check_mask(mask, pred))


def separable_filter_valid(maps: torch.Tensor, weights_1d: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``(B, C, H, W)`` with ``w (x) w``, valid region only.

    Depthwise conv in channels-last layout: one pass over all images and channels.
    Output shape ``(B, C, H - k + 1, W - k + 1)``.
    """
    b, c, h, w = maps.shape
    k = weights_1d.numel()
    n = b * c
    x = maps.reshape(1, n, h, w).contiguous(memory_format=torch.channels_last)
    wt = weights_1d.to(dtype=maps.dtype, device=maps.device)
    kh = wt.view(1, 1, 1, k).expand(n, 1, 1, k).contiguous()
    kv = wt.view(1, 1, k, 1).expand(n, 1, k, 1).contiguous()
    out = F.conv2d(F.conv2d(x, kh, groups=n), kv, groups=n)
    return out.reshape(b, c, h - k + 1, w - k + 1)


def ssim_map(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    kernel: SsimKernel = "gaussian",
) -> torch.Tensor:
    """Local SSIM map on the border-cropped grid, ``(B, 1, H - win + 1, W - win + 1)``.

    Pixel ``[i, j]`` of the map belongs to image pixel ``[i + pad, j + pad]`` with
    ``pad = (win - 1) // 2``.
    """
    _check_pair(pred, target, data_range)
    weights, cov_norm = _kernel_1d(kernel, pred.dtype)
    k = weights.numel()
    if pred.shape[-1] < k or pred.shape[-2] < k:
        raise LdctError(f"ssim: images must be at least {k}x{k}, found {tuple(pred.shape[-2:])}")
    grad = torch.is_grad_enabled() and (pred.requires_grad or target.requires_grad)
    if grad:
        stack = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)
    else:
        b, _, h, w = pred.shape
        stack = torch.empty((b, 5, h, w), dtype=pred.dtype, device=pred.device)
        stack[:, 0:1] = pred
        stack[:, 1:2] = target
        torch.mul(pred, pred, out=stack[:, 2:3])
        torch.mul(target, target, out=stack[:, 3:4])
        torch.mul(pred, target, out=stack[:, 4:5])
    ux, uy, uxx, uyy, uxy = separable_filter_valid(stack, weights).unbind(dim=1)
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    if grad:
        # differentiable (out-of-place) form, for callers that back-propagate through SSIM
        vx = cov_norm * (uxx - ux * ux)
        vy = cov_norm * (uyy - uy * uy)
        vxy = cov_norm * (uxy - ux * uy)
        num_g = (2 * ux * uy + c1) * (2 * vxy + c2)
        den_g = (ux * ux + uy * uy + c1) * (vx + vy + c2)
        return (num_g / den_g).unsqueeze(1)
    # in-place form of (2 ux uy + c1)(2 vxy + c2) / ((ux^2 + uy^2 + c1)(vx + vy + c2)),
    # v* = cov_norm * (filtered second moment - product of means)
    uxuy = ux * uy
    sq = ux * ux
    sq.addcmul_(uy, uy)  # ux^2 + uy^2
    num2 = uxy.sub_(uxuy).mul_(2.0 * cov_norm).add_(c2)  # 2 vxy + c2 (uxy reused)
    den2 = uxx.add_(uyy).sub_(sq).mul_(cov_norm).add_(c2)  # vx + vy + c2 (uxx reused)
    num = uxuy.mul_(2.0).add_(c1).mul_(num2)
    den = sq.add_(c1).mul_(den2)
    return num.div_(den).unsqueeze(1)


SsimBorder = Literal["crop", "zero_pad"]


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    kernel: SsimKernel = "gaussian",
    mask: torch.Tensor | None = None,
    border: SsimBorder = "crop",
) -> torch.Tensor:
    """Mean structural similarity per image (skimage conventions, see module doc). ``(B,)``.

    ``border="zero_pad"``: the images are zero-padded by ``(win - 1) // 2`` and the full-size
    map is averaged, as ``F.conv2d(..., padding=win // 2)`` in the RED-CNN code
    (pytorch-ssim); border windows then see zeros (a different number near the image edge).
    """
    if border == "zero_pad":
        pad = (window_size(kernel) - 1) // 2
        pred = F.pad(pred, (pad, pad, pad, pad))
        target = F.pad(target, (pad, pad, pad, pad))
        smap = ssim_map(pred, target, data_range, kernel)
        return _masked_mean(smap, _check_mask(mask, smap))
    smap = ssim_map(pred, target, data_range, kernel)
    m = _check_mask(mask, pred)
    if m is not None:
        pad = (window_size(kernel) - 1) // 2
        m = m[..., pad : pad + smap.shape[-2], pad : pad + smap.shape[-1]]
    return _masked_mean(smap, m)
