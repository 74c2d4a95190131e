"""Noise QA against analytic values: ROI SD, white and colored noise power spectra."""

from __future__ import annotations

import numpy as np

from pipeline.evaluate.noise import (
    Roi,
    find_uniform_rois,
    nps_mean_peak,
    radial_nps,
    roi_stats,
)

SP = (0.7, 0.7)  # mm


def _patches(img: np.ndarray, n: int) -> np.ndarray:
    h, w = img.shape
    return np.stack([img[y : y + n, x : x + n] for y in range(0, h, n) for x in range(0, w, n)])


def test_white_noise_nps_equals_sigma2_pixel_area() -> None:
    rng = np.random.default_rng(0)
    sigma = 20.0
    img = sigma * rng.standard_normal((1024, 1024))
    freq, nps = radial_nps(_patches(img, 64), SP)
    expected = sigma**2 * SP[0] * SP[1]
    np.testing.assert_allclose(nps[2:], expected, rtol=0.08)  # 256 patches, annuli >= 12 bins
    assert abs(np.mean(nps) / expected - 1) < 0.02
    assert freq.max() <= 0.5 / SP[0] + 1e-9


def test_colored_noise_nps_matches_transfer_function() -> None:
    rng = np.random.default_rng(1)
    n, sigma, s_mm = 1024, 30.0, 1.0
    f = np.fft.fftfreq(n, d=SP[0])
    h2 = np.exp(-4 * np.pi**2 * s_mm**2 * (f[:, None] ** 2 + f[None, :] ** 2))  # |H|^2
    white = sigma * rng.standard_normal((n, n))
    img = np.real(np.fft.ifft2(np.fft.fft2(white) * np.sqrt(h2)))
    # SD of the colored noise: sigma * sqrt(mean |H|^2)
    sd_expected = sigma * np.sqrt(h2.mean())
    assert abs(img.std() / sd_expected - 1) < 0.02
    freq, nps = radial_nps(_patches(img, 64), SP)
    analytic = sigma**2 * SP[0] * SP[1] * np.exp(-4 * np.pi**2 * s_mm**2 * freq**2)
    band = (freq > 0.05) & (analytic > 0.05 * analytic.max())
    np.testing.assert_allclose(nps[band], analytic[band], rtol=0.15)
    mean_f, peak_f = nps_mean_peak(freq, nps)
    mean_an, _ = nps_mean_peak(freq, analytic)
    assert abs(mean_f - mean_an) < 0.02
    assert peak_f < 0.1  # low-pass noise peaks at the lowest frequencies


def test_uniform_rois_are_in_flat_region_and_sd_is_measured() -> None:
    rng = np.random.default_rng(2)
    h = w = 256
    yy, xx = np.mgrid[0:h, 0:w]
    body = ((yy - 128) / 110.0) ** 2 + ((xx - 128) / 110.0) ** 2 <= 1.0
    hu = np.where(body, 50.0, -1000.0)
    hu[:, :128] += np.where(body[:, :128], 80 * np.sin(xx[:, :128] / 3.0), 0.0)  # textured half
    hu = hu + 15.0 * rng.standard_normal((h, w))
    rois = find_uniform_rois(hu, body, size=24, n_rois=3)
    assert len(rois) == 3
    for r in rois:
        assert r.x0 >= 128  # all on the flat half
        assert body[r.y0 : r.y0 + 24, r.x0 : r.x0 + 24].all()
    stats = roi_stats(hu, rois)
    for mean, sd in stats:
        assert abs(mean - 50.0) < 5 and abs(sd - 15.0) < 2.5
    # no overlap
    occ = np.zeros((h, w), int)
    for r in rois:
        occ[r.y0 : r.y0 + 24, r.x0 : r.x0 + 24] += 1
    assert occ.max() == 1
    assert Roi(0, 0, 4).take(np.ones((2, 8, 8))).shape == (2, 4, 4)


def test_constant_regions_are_not_chosen_as_uniform_rois() -> None:
    """A flat (SD 0) patch, e.g. lossy-flattened brain, is degenerate: never the 'most uniform'."""
    rng = np.random.default_rng(5)
    hu = 40.0 + 10.0 * rng.standard_normal((128, 128))
    hu[20:80, 20:80] = 32.0  # constant region inside the body
    body = np.ones_like(hu, dtype=bool)
    rois = find_uniform_rois(hu, body, size=16)
    assert rois
    for r in rois:  # no ROI lies inside the flat patch
        assert not (r.y0 >= 20 and r.y0 + 16 <= 80 and r.x0 >= 20 and r.x0 + 16 <= 80)
        assert r.take(hu).std() > 0.5
    assert find_uniform_rois(np.full((64, 64), 32.0), np.ones((64, 64), bool), size=16) == []


def test_noise_and_edges_on_noise_free_slice_gives_nan_ratios_not_an_error() -> None:
    """pydicom's 693_J2KI.dcm made qa divide by a zero ROI SD; degenerate input -> NaN, no ROI."""
    from pipeline.evaluate.qa import noise_and_edges, ratio

    yy, xx = np.mgrid[0:128, 0:128]
    body = (yy - 64) ** 2 + (xx - 64) ** 2 < 55**2
    hu = np.where(body, 32.0, -1000.0)
    _, _, rows = noise_and_edges("p", {"low": hu[None], "denoised": hu[None]}, body[None], SP)
    den = next(r for r in rows if r["role"] == "denoised")
    assert den["n_rois"] == 0
    assert np.isnan(den["sd_ratio_vs_low"]) and np.isnan(den["nps_mean_freq_ratio_vs_low"])
    assert ratio(1.0, 0.0) != ratio(1.0, 0.0)  # NaN
    assert ratio(3.0, 2.0) == 1.5


def test_evaluate_lossy_j2k_head_slice_from_pydicom(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The real file of the bug report: evaluate runs and writes finite-or-NaN ratios."""
    import shutil

    import pytest

    pydicom_data = pytest.importorskip("pydicom.data")
    src = pydicom_data.get_testdata_file("693_J2KI.dcm", download=False)
    if src is None:
        pytest.skip("pydicom test file 693_J2KI.dcm not shipped")
    series = tmp_path / "in"
    series.mkdir()
    shutil.copy(src, series / "693_J2KI.dcm")
    from pipeline.evaluate.runner import evaluate

    res = evaluate(series, tmp_path / "out")
    qa = res.tables["qa"]
    assert (qa["roi_sd_hu"].dropna() > 0.5).all()
