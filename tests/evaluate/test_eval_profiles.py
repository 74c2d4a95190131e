"""Profiles apply windows and masks as documented (oracle: skimage/NumPy on explicit HU math)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pipeline.errors import ConfigError
from pipeline.evaluate.body_mask import body_mask
from pipeline.evaluate.profiles import PROFILES, compute_profile, get_profile


def _hu_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = w = 96
    yy, xx = np.mgrid[0:h, 0:w]
    body = ((yy - 48) / 40.0) ** 2 + ((xx - 48) / 30.0) ** 2 <= 1.0
    full = np.where(body, 40.0, -1000.0)
    full[(yy - 40) ** 2 + (xx - 50) ** 2 < 64] = 700.0  # bone insert, outside soft-tissue window
    full = full + 10 * rng.standard_normal((h, w))
    low = full + 40 * rng.standard_normal((h, w))
    return low[None, None], full[None, None], body


def test_redcnn_profile_equals_skimage_on_clipped_hu() -> None:
    low, full, _ = _hu_pair()
    out = compute_profile(torch.from_numpy(low), torch.from_numpy(full), "redcnn")
    lo_c, fu_c = np.clip(low[0, 0], -160, 240), np.clip(full[0, 0], -160, 240)
    ref_psnr = peak_signal_noise_ratio(fu_c, lo_c, data_range=400.0)
    ref_ssim = structural_similarity(
        fu_c,
        lo_c,
        data_range=400.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert out["psnr"].item() == pytest.approx(ref_psnr, abs=1e-9)
    assert out["ssim"].item() == pytest.approx(ref_ssim, abs=1e-9)


def test_ldctbench_abdomen_profile_equals_skimage_on_window() -> None:
    low, full, _ = _hu_pair(1)
    out = compute_profile(torch.from_numpy(low), torch.from_numpy(full), "ldctbench-abdomen")
    lo_w = np.clip((low[0, 0] - (-150.0)) / 400.0, 0, 1)
    fu_w = np.clip((full[0, 0] - (-150.0)) / 400.0, 0, 1)
    assert out["psnr"].item() == pytest.approx(
        peak_signal_noise_ratio(fu_w, lo_w, data_range=1.0), abs=1e-9
    )
    assert out["ssim"].item() == pytest.approx(
        structural_similarity(fu_w, lo_w, data_range=1.0), abs=1e-9
    )


def test_hu_profile_uses_body_mask() -> None:
    low, full, body = _hu_pair(2)
    mask = body_mask(full[0, 0])
    assert (mask == body).mean() > 0.995  # body found (edges may differ by a pixel)
    out = compute_profile(
        torch.from_numpy(low),
        torch.from_numpy(full),
        "hu",
        body_mask=torch.from_numpy(mask)[None, None],
    )
    d = (low - full)[0, 0][mask]
    assert out["rmse_hu"].item() == pytest.approx(np.sqrt((d**2).mean()), rel=1e-12)
    assert out["mae_hu"].item() == pytest.approx(np.abs(d).mean(), rel=1e-12)
    with pytest.raises(ConfigError, match="body mask"):
        compute_profile(torch.from_numpy(low), torch.from_numpy(full), "hu")


def test_body_mask_fills_holes_and_drops_couch() -> None:
    h = w = 128
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), -1000.0)
    body = ((yy - 60) / 45.0) ** 2 + ((xx - 64) / 50.0) ** 2 <= 1.0
    img[body] = 30.0
    img[(yy - 60) ** 2 + (xx - 50) ** 2 < 100] = -850.0  # lung-like hole inside
    img[118:122, 10:118] = 100.0  # couch, disconnected
    m = body_mask(img)
    np.testing.assert_array_equal(m, body)


def test_profile_lookup_and_description() -> None:
    with pytest.raises(ConfigError, match="did you mean 'redcnn'"):
        get_profile("redcn")
    d = PROFILES["redcnn"].describe()
    assert d["window"]["lo_hu"] == -160 and d["window"]["hi_hu"] == 240
    assert d["data_range"] == 400 and d["ssim_window_px"] == 11
    assert PROFILES["ldctbench-abdomen"].describe()["ssim_window_px"] == 7


def test_redcnn_profile_float32_close_to_float64() -> None:
    low, full, _ = _hu_pair(3)
    o64 = compute_profile(torch.from_numpy(low), torch.from_numpy(full), "redcnn")
    o32 = compute_profile(torch.from_numpy(low).float(), torch.from_numpy(full).float(), "redcnn")
    assert abs(o64["ssim"].item() - o32["ssim"].item()) < 1e-5
    assert abs(o64["psnr"].item() - o32["psnr"].item()) < 1e-4
