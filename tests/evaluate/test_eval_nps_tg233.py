"""TG-233 NPS on noise-only images: analytic cases and an independent implementation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.nps import (
    adjacent_patches,
    detrend,
    pair_rois,
    roi_size_px,
    role_spectra,
    spectrum,
)

SP = 0.7  # mm


def _colored(n: int, n_slices: int, sigma: float, s_mm: float, seed: int) -> np.ndarray:
    """Slices of band-pass (ramp x Gaussian, FBP-like) noise with mean |H|^2 = 1: SD sigma."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n, d=SP)
    fr2 = f[:, None] ** 2 + f[None, :] ** 2
    h2 = np.sqrt(fr2) * np.exp(-4 * np.pi**2 * s_mm**2 * fr2)
    h2 /= h2.mean()
    return np.stack(
        [
            np.real(np.fft.ifft2(np.fft.fft2(sigma * rng.standard_normal((n, n))) * np.sqrt(h2)))
            for _ in range(n_slices)
        ]
    )


def _grid_patches(vol: np.ndarray, m: int) -> np.ndarray:
    z, h, w = vol.shape
    corners = [(y, x) for y in range(0, h, m) for x in range(0, w, m)]
    return np.stack([vol[k, y : y + m, x : x + m] for k in range(z) for y, x in corners])


def test_roi_is_sized_in_mm() -> None:
    assert roi_size_px(380 / 512, (512, 512)) >= 64  # TG-233: >= 64 px at 512^2
    assert roi_size_px(1.484375, (256, 256)) == 32
    assert roi_size_px(0.3, (128, 128)) == 64  # never more than half the image


def test_detrend_removes_a_quadratic_surface_exactly() -> None:
    y, x = np.mgrid[0:32, 0:32]
    surf = 3 + 0.5 * x - 0.2 * y + 0.01 * x * y + 0.003 * x**2 - 0.002 * y**2
    np.testing.assert_allclose(detrend(surf[None].astype(float)), 0.0, atol=1e-9)


def test_white_noise_adjacent_slices_flat_nps_sigma2_pixel_area() -> None:
    """Two independent slices: (b - a)/sqrt(2) has the slices' SD; NPS flat at sigma^2 dx dy."""
    rng = np.random.default_rng(0)
    sigma = 20.0
    vol = sigma * rng.standard_normal((9, 256, 256))
    body = np.ones(vol.shape, bool)
    size = 64
    rois = pair_rois(np.zeros_like(vol) + rng.standard_normal(vol.shape), body, size)
    sp = spectrum(adjacent_patches(vol, rois), (SP, SP), "adjacent")
    assert sp is not None and sp.n_patches == 8 * 3 and sp.roi_size_px == 64
    assert len(sp.freq_cyc_mm) >= 30  # n/2 radial bins
    expected = sigma**2 * SP * SP
    assert abs(np.mean(sp.nps_hu2_mm2[2:]) / expected - 1) < 0.03
    np.testing.assert_allclose(sp.nps_hu2_mm2[4:], expected, rtol=0.2)
    assert sp.noise_sd_hu == pytest.approx(sigma, rel=0.03)


def test_anatomy_cancels_in_adjacent_differences() -> None:
    """Static structure (an edge and a gradient) + noise: the NPS is the noise's alone."""
    noise = _colored(128, 6, 15.0, 0.6, seed=1)
    y, x = np.mgrid[0:128, 0:128]
    anatomy = 40.0 * (x > 64) + 0.3 * y
    vol = noise + anatomy[None]
    body = np.ones(vol.shape, bool)
    spec = role_spectra({"low": vol}, body, (SP, SP))["low"]["adjacent"]
    ref = role_spectra({"low": noise}, body, (SP, SP))["low"]["adjacent"]
    assert spec.noise_sd_hu == pytest.approx(15.0, rel=0.1)
    assert spec.mean_freq_cyc_mm == pytest.approx(ref.mean_freq_cyc_mm, rel=0.05)


def test_quarter_dose_has_twice_the_noise_sd_and_minus_full_is_the_added_noise() -> None:
    """Photon thinning: low = full + independent extra noise of variance 3 sigma_full^2."""
    full_n = _colored(128, 6, 10.0, 0.6, seed=3)
    extra = _colored(128, 6, 10.0 * np.sqrt(3.0), 0.6, seed=4)
    x = np.arange(128)[None, None, :]
    anatomy = 30.0 * np.sin(x / 9.0)
    vols = {"full": anatomy + full_n, "low": anatomy + full_n + extra}
    body = np.ones(full_n.shape, bool)
    sp = role_spectra(vols, body, (SP, SP))
    ratio = sp["low"]["adjacent"].noise_sd_hu / sp["full"]["adjacent"].noise_sd_hu
    assert ratio == pytest.approx(2.0, rel=0.08)
    assert sp["low"]["minus_full"].noise_sd_hu == pytest.approx(10 * np.sqrt(3), rel=0.08)
    assert "minus_full" not in sp["full"]


def test_agrees_with_micro_ct_image_quality_toolbox() -> None:
    """Independent implementation (polynomial detrend, photutils-style radial profile)."""
    api = pytest.importorskip("microct_iq_toolbox.api")
    vol = _colored(128, 8, 30.0, 0.8, seed=0)
    m = 64
    bounds = [[y, y + m, x, x + m] for y in range(0, 128, m) for x in range(0, 128, m)]
    theirs = api.nps(vol, bounds, SP)
    ours = spectrum(_grid_patches(vol, m), (SP, SP), "noise-only")
    assert ours is not None
    assert ours.noise_sd_hu == pytest.approx(theirs.summary["noise_std"], rel=0.02)
    assert ours.mean_freq_cyc_mm == pytest.approx(theirs.summary["nps_f_mean"], rel=0.05)
    f = np.array([0.1, 0.2, 0.3])  # where the NPS holds its power (tails: radial-bin details)
    np.testing.assert_allclose(
        np.interp(f, ours.freq_cyc_mm, ours.nps_hu2_mm2),
        np.interp(f, theirs.x, theirs.y),
        rtol=0.08,
    )
