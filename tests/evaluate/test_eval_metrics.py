"""Metric oracle tests: PSNR/SSIM/RMSE/MAE against scikit-image and NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pipeline.evaluate import metrics as M


def _pair(seed: int, b: int = 3, h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    target = np.stack([base + 0.05 * rng.standard_normal((h, w)) for _ in range(b)])
    pred = target + 0.08 * rng.standard_normal(target.shape)
    return pred[:, None], target[:, None]


def _t(a: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


@pytest.mark.parametrize("data_range", [1.0, 2.5])
def test_psnr_equals_skimage(data_range: float) -> None:
    pred, target = _pair(0)
    ours = M.psnr(_t(pred), _t(target), data_range)
    ref = [
        peak_signal_noise_ratio(t[0], p[0], data_range=data_range)
        for p, t in zip(pred, target, strict=True)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12)
    ours32 = M.psnr(_t(pred, torch.float32), _t(target, torch.float32), data_range)
    np.testing.assert_allclose(ours32.numpy(), ref, atol=1e-4)


def test_psnr_identical_is_inf() -> None:
    _, target = _pair(1)
    out = M.psnr(_t(target), _t(target), 1.0)
    assert torch.isinf(out).all() and (out > 0).all()
    assert M.rmse(_t(target), _t(target)).eq(0).all()


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_ssim_gaussian_equals_skimage(dtype: torch.dtype, atol: float) -> None:
    pred, target = _pair(2)
    ours = M.ssim(_t(pred, dtype), _t(target, dtype), 1.0, kernel="gaussian")
    ref = [
        structural_similarity(
            t[0],
            p[0],
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for p, t in zip(pred, target, strict=True)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, atol=atol, rtol=0)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_ssim_uniform_equals_skimage(dtype: torch.dtype, atol: float) -> None:
    pred, target = _pair(3)
    ours = M.ssim(_t(pred, dtype), _t(target, dtype), 1.0, kernel="uniform")
    ref = [
        structural_similarity(t[0], p[0], data_range=1.0) for p, t in zip(pred, target, strict=True)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, atol=atol, rtol=0)


def test_ssim_hu_data_range_equals_skimage() -> None:
    """HU clipped to [-160, 240] with data_range 400 (the redcnn convention)."""
    pred, target = _pair(4)
    pred_hu = np.clip(pred * 400 - 160 + 30, -160, 240)
    target_hu = np.clip(target * 400 - 160, -160, 240)
    ours = M.ssim(_t(pred_hu), _t(target_hu), 400.0, kernel="gaussian")
    ref = [
        structural_similarity(
            t[0],
            p[0],
            data_range=400.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for p, t in zip(pred_hu, target_hu, strict=True)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-10)


def test_ssim_identical_is_one_and_map_shape() -> None:
    _, target = _pair(5)
    t = _t(target)
    np.testing.assert_allclose(M.ssim(t, t, 1.0).numpy(), 1.0, atol=1e-12)
    assert M.ssim_map(t, t, 1.0, "gaussian").shape == (3, 1, 64 - 10, 80 - 10)
    assert M.ssim_map(t, t, 1.0, "uniform").shape == (3, 1, 64 - 6, 80 - 6)


def test_masked_metrics_match_numpy_and_skimage_full_map() -> None:
    pred, target = _pair(6)
    mask = np.zeros_like(pred, dtype=bool)
    mask[:, :, 10:40, 20:70] = True
    p, t, m = _t(pred), _t(target), torch.from_numpy(mask)
    diff = (pred - target)[mask].reshape(3, -1)
    np.testing.assert_allclose(M.rmse(p, t, m).numpy(), np.sqrt((diff**2).mean(1)), rtol=1e-12)
    np.testing.assert_allclose(M.mae(p, t, m).numpy(), np.abs(diff).mean(1), rtol=1e-12)
    np.testing.assert_allclose(
        M.psnr(p, t, 1.0, m).numpy(), 10 * np.log10(1.0 / (diff**2).mean(1)), rtol=1e-12
    )
    # SSIM with mask == mean of skimage's full SSIM map over the masked pixels in the crop
    ours = M.ssim(p, t, 1.0, kernel="uniform", mask=m).numpy()
    for i in range(3):
        _, smap = structural_similarity(target[i, 0], pred[i, 0], data_range=1.0, full=True)
        crop = np.zeros_like(mask[i, 0])
        crop[3:-3, 3:-3] = True
        assert math.isclose(ours[i], smap[mask[i, 0] & crop].mean(), abs_tol=1e-10)


def test_mask_broadcast_and_empty_mask_nan() -> None:
    pred, target = _pair(7)
    p, t = _t(pred), _t(target)
    full = torch.ones(1, 1, 64, 80, dtype=torch.bool)
    np.testing.assert_allclose(M.rmse(p, t, full).numpy(), M.rmse(p, t).numpy(), rtol=1e-12)
    assert torch.isnan(M.rmse(p, t, torch.zeros_like(full))).all()


def test_bad_inputs_raise() -> None:
    pred, target = _pair(8)
    p, t = _t(pred), _t(target)
    with pytest.raises(ValueError, match="data_range"):
        M.psnr(p, t, 0.0)
    with pytest.raises(ValueError, match="shapes must match"):
        M.ssim(p, t[:, :, :32], 1.0)
    with pytest.raises(ValueError, match="expected shape"):
        M.psnr(p[:, 0], t[:, 0], 1.0)
    with pytest.raises(ValueError, match="kernel"):
        M.ssim(p, t, 1.0, kernel="box")  # type: ignore[arg-type]


def test_ssim_differentiable_path_equals_fast_path() -> None:
    pred, target = _pair(9)
    p = _t(pred).requires_grad_(True)
    t = _t(target)
    val = M.ssim(p, t, 1.0, kernel="gaussian")
    val.sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    with torch.no_grad():
        fast = M.ssim(_t(pred), t, 1.0, kernel="gaussian")
    np.testing.assert_allclose(val.detach().numpy(), fast.numpy(), atol=1e-12)
