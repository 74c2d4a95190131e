"""Profiles apply windows and masks as documented (oracle: skimage/NumPy on explicit HU math)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

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


def _redcnn_measure_ssim(img1: np.ndarray, img2: np.ndarray, data_range: float) -> float:
    """Re-implementation of SSinyu/RED-CNN ``measure.compute_SSIM`` (from pytorch-ssim):
    11x11 Gaussian (sigma 1.5) by ``F.conv2d(..., padding=5)``: zero padding, full-map mean."""
    import math

    import torch.nn.functional as F

    g = torch.tensor([math.exp(-((x - 5) ** 2) / (2 * 1.5**2)) for x in range(11)])
    g = (g / g.sum()).double()
    win = (g[:, None] @ g[None, :])[None, None]
    a = torch.from_numpy(img1)[None, None].double()
    b = torch.from_numpy(img2)[None, None].double()
    mu1, mu2 = F.conv2d(a, win, padding=5), F.conv2d(b, win, padding=5)
    s1 = F.conv2d(a * a, win, padding=5) - mu1**2
    s2 = F.conv2d(b * b, win, padding=5) - mu2**2
    s12 = F.conv2d(a * b, win, padding=5) - mu1 * mu2
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def _ldctbench_center_width(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """Re-implementation of LDCT-Bench ``test_utils.apply_center_width`` (out_range (0, 1))."""
    lower = center - 0.5 - (width - 1) / 2.0
    upper = center - 0.5 + (width - 1) / 2.0
    res = np.empty(x.shape, dtype=x.dtype)
    res[x <= lower] = 0.0
    sel = (x > lower) & (x <= upper)
    res[sel] = (x[sel] - (center - 0.5)) / (width - 1.0) + 0.5
    res[x > upper] = 1.0
    return res


@pytest.mark.parametrize("seed", [0, 3])
def test_redcnn_profile_reproduces_the_red_cnn_code(seed: int) -> None:
    """HU clipped to [-160, 240] (its ``trunc``), data_range 400, its SSIM: within 1e-4."""
    low, full, _ = _hu_pair(seed)
    out = compute_profile(torch.from_numpy(low), torch.from_numpy(full), "redcnn")
    lo_c, fu_c = np.clip(low[0, 0], -160, 240), np.clip(full[0, 0], -160, 240)
    ref_psnr = 10 * np.log10(400.0**2 / np.mean((lo_c - fu_c) ** 2))  # measure.compute_PSNR
    assert out["psnr"].item() == pytest.approx(ref_psnr, abs=1e-9)
    ref = _redcnn_measure_ssim(lo_c, fu_c, 400.0)
    assert abs(out["ssim"].item() - ref) < 1e-4
    cropped = structural_similarity(
        fu_c, lo_c, data_range=400.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )  # fmt: skip
    assert abs(cropped - ref) > 1e-3  # the border convention matters (skimage crops)


@pytest.mark.parametrize(
    ("profile", "center_hu", "width"),
    [("ldctbench-abdomen", 50.0, 400.0), ("ldctbench-chest", -600.0, 1500.0),
     ("ldctbench-neuro", 40.0, 80.0)],
)  # fmt: skip
def test_ldctbench_profiles_reproduce_its_metric_code(
    profile: str, center_hu: float, width: float
) -> None:
    """LDCT-Bench ``compute_metric``: raw values (HU + 1024), ``apply_center_width`` with its
    CW table, skimage SSIM (data_range 1), PSNR 10 log10(1 / MSE): within 1e-4."""
    low, full, _ = _hu_pair(5)
    out = compute_profile(torch.from_numpy(low), torch.from_numpy(full), profile)
    t = _ldctbench_center_width(full[0, 0] + 1024.0, 1024.0 + center_hu, width)
    p = _ldctbench_center_width(low[0, 0] + 1024.0, 1024.0 + center_hu, width)
    ref_psnr = 10 * np.log10(1.0 / np.mean((t - p) ** 2))
    ref_ssim = structural_similarity(t, p, data_range=1.0)
    assert abs(out["psnr"].item() - ref_psnr) < 1e-4
    assert abs(out["ssim"].item() - ref_ssim) < 1e-4


def test_ldctbench_sees_the_stored_padding_value() -> None:
    """Padding read as air (-1000 HU) vs the file's -3024 HU: LDCT-Bench windows the latter."""
    from pipeline.evaluate.runner import stored_padding_hu
    from pipeline.io.volume import CTVolume, SliceInfo

    hu = np.full((1, 32, 32), 40.0, np.float32)
    mask = np.zeros(hu.shape, bool)
    mask[:, :4] = True
    hu[mask] = -1000.0
    sl = SliceInfo(Path("x"), "1", (0.0, 0.0, 0.0), rescale_slope=1.0, rescale_intercept=-1024.0)
    vol = CTVolume(
        hu,
        (1.0, 1.0, 1.0),
        (0.0, 0.0, 0.0),
        np.eye(3),
        padding_mask=mask,
        slices=[sl],
        meta={"PixelPaddingValue": -2000},
    )
    out = stored_padding_hu(vol)
    assert (out[mask] == -3024.0).all() and (out[~mask] == 40.0).all()
    plain = CTVolume(hu, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))  # no padding recorded
    assert stored_padding_hu(plain) is plain.hu


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
