"""TTF, CNR and d' from circular inserts: analytic cases and an independent implementation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.evaluate.task import (
    TTF50_FACTOR,
    Geometry,
    Insert,
    dprime,
    esf_samples,
    eye_filter,
    find_inserts,
    fit_ttf,
    fit_ttf_joint,
    frequency_grid,
    gaussian_ttf,
    insert_rows,
)

PX = 0.5  # mm


def _geo(nz: int, n: int) -> Geometry:
    return Geometry(
        origin_mm=np.array([-(n - 1) / 2 * PX, -(n - 1) / 2 * PX, 0.0]),
        direction=np.eye(3),
        spacing_mm=(2.0, PX, PX),
        slice_pos_mm=2.0 * np.arange(nz),
    )


def _disk(n: int, radius_mm: float, contrast: float, cx_mm: float = 0.0) -> np.ndarray:
    """Exact-area disk (8x supersampled) centred at (cx_mm, 0) in the image frame."""
    s = 8
    c = (np.arange(n * s) - (n * s - 1) / 2) * PX / s
    inside = ((c[None, :] - cx_mm) ** 2 + c[:, None] ** 2) <= radius_mm**2
    return contrast * inside.reshape(n, s, n, s).mean(axis=(1, 3))


def test_blurred_disk_gives_the_known_ttf() -> None:
    """Disk * Gaussian(sigma) -> TTF exp(-2 pi^2 s^2 f^2), s^2 = sigma^2 + px^2/12 (pixel box)."""
    n, sigma_mm = 96, 1.0
    rng = np.random.default_rng(0)
    img = ndi.gaussian_filter(_disk(n, 9.0, 100.0), sigma_mm / PX)
    vol = np.stack([img + 40.0 + rng.normal(0, 2.0, img.shape) for _ in range(3)])
    ins = Insert((0.0, 0.0, 2.0), 9.0, 100.0)  # cylinder-like: 3 slices within 0.8 R of centre
    geo = Geometry(
        origin_mm=np.array([-(n - 1) / 2 * PX, -(n - 1) / 2 * PX, 0.0]),
        direction=np.eye(3),
        spacing_mm=(1.0, PX, PX),
        slice_pos_mm=np.array([1.0, 2.0, 3.0]),
    )
    d, v, used = esf_samples(vol, ins, geo)
    assert used == [0, 1, 2]
    fit = fit_ttf(d, v, PX)
    expected_s = math.sqrt(sigma_mm**2 + PX**2 / 12)
    # the sphere's cross-section at +-1 mm is 0.6 % smaller; the fit uses each slice's radius
    assert fit.psf_sd_mm == pytest.approx(expected_s, rel=0.04)
    assert fit.ttf50_cyc_mm == pytest.approx(TTF50_FACTOR / expected_s, rel=0.04)
    assert fit.contrast_hu == pytest.approx(100.0, rel=0.02)
    assert gaussian_ttf(np.array([fit.ttf50_cyc_mm]), fit.psf_sd_mm)[0] == pytest.approx(0.5)


def test_joint_fit_pools_low_contrast_inserts() -> None:
    """Three 15-HU inserts in 10-HU noise: one alone is poorly determined, pooled is close."""
    n, sigma_mm = 192, 1.2
    rng = np.random.default_rng(1)
    xs = (-30.0, 0.0, 30.0)  # edges 14 mm apart: ESF bands (6 mm) do not overlap
    inserts = [Insert((x, 0.0, 2.0), 8.0, 15.0) for x in xs]
    clean = ndi.gaussian_filter(sum(_disk(n, 8.0, 15.0, cx) for cx in xs), 2.4)
    vol = np.stack([clean + rng.normal(0, 10.0, clean.shape) for _ in range(3)])
    geo = Geometry(
        origin_mm=np.array([-(n - 1) / 2 * PX, -(n - 1) / 2 * PX, 0.0]),
        direction=np.eye(3),
        spacing_mm=(1.0, PX, PX),
        slice_pos_mm=np.array([1.0, 2.0, 3.0]),
    )
    samples = [esf_samples(vol, i, geo)[:2] for i in inserts]
    joint = fit_ttf_joint(samples, PX)
    assert joint.psf_sd_mm == pytest.approx(math.sqrt(sigma_mm**2 + PX**2 / 12), rel=0.12)
    assert joint.psf_sd_rel_se < min(fit_ttf(d, v, PX).psf_sd_rel_se for d, v in samples)


def test_pure_noise_is_not_a_ttf() -> None:
    rng = np.random.default_rng(2)
    vol = rng.normal(0, 20.0, (3, 96, 96))
    ins = Insert((0.0, 0.0, 2.0), 9.0, 5.0)
    geo = Geometry(np.array([-23.75, -23.75, 0.0]), np.eye(3), (1.0, PX, PX), np.array([1.0, 2, 3]))
    d, v, _ = esf_samples(vol, ins, geo)
    assert math.isnan(fit_ttf(d, v, PX).ttf50_cyc_mm)


def test_dprime_npw_of_a_disk_in_white_noise_is_analytic() -> None:
    """d'^2 = C^2 pi R^2 / (sigma^2 dx dy) for TTF = 1 (the matched filter's SNR)."""
    f = frequency_grid(PX, 500)
    sigma = 10.0
    nps = np.full_like(f, sigma**2 * PX * PX)
    for r_mm, c_hu in ((2.5, 20.0), (5.0, 10.0)):
        got = dprime(f, np.ones_like(f), nps, r_mm, c_hu)
        want = c_hu * math.sqrt(math.pi * r_mm**2 / (sigma**2 * PX * PX))
        assert got == pytest.approx(want, rel=0.03)  # band-limited at Nyquist
        # four times the noise power halves d'
        assert dprime(f, np.ones_like(f), 4 * nps, r_mm, c_hu) == pytest.approx(got / 2)
    assert eye_filter(np.array([4.0 / (500.0 * math.pi / 180.0)]))[0] == pytest.approx(1.0)


def test_dprime_agrees_with_micro_ct_image_quality_toolbox() -> None:
    """Same NPW/NPWE integrals; the toolbox folds the 2 pi of the polar Jacobian into its scale."""
    dp = pytest.importorskip("microct_iq_toolbox.d_prime_calculator")
    f = frequency_grid(PX, 500)
    nps = 100.0 * PX * PX * (0.3 + f)  # ramp-like coloured noise
    ttf = gaussian_ttf(f, 0.8)
    for r_mm, c_hu in ((2.5, 20.0), (5.0, 10.0)):
        d = [2 * r_mm]
        kw = {"disc_diameters_mm": d, "contrast_hu": c_hu, "curve_diameters_mm": d}
        theirs_npw = dp.get_d_prime_npw(f, ttf, f, nps, **kw)["d_prime"][0]
        theirs_npwe = dp.get_d_prime_npwe(f, ttf, f, nps, **kw)["d_prime"][0]
        scale = math.sqrt(2 * math.pi)
        assert dprime(f, ttf, nps, r_mm, c_hu) == pytest.approx(theirs_npw * scale, rel=5e-3)
        got = dprime(f, ttf, nps, r_mm, c_hu, observer="npwe")
        assert got == pytest.approx(theirs_npwe * scale, rel=5e-3)


def test_insert_rows_quarter_dose_halves_dprime() -> None:
    """Same object, 4x the (white) noise variance: d' halves, TTF stays."""
    n = 128
    rng = np.random.default_rng(3)
    clean = ndi.gaussian_filter(_disk(n, 8.0, 40.0), 2.0)
    full = np.stack([clean + rng.normal(0, 5.0, clean.shape) for _ in range(3)])
    low = np.stack([clean + rng.normal(0, 10.0, clean.shape) for _ in range(3)])
    geo = Geometry(
        origin_mm=np.array([-(n - 1) / 2 * PX, -(n - 1) / 2 * PX, 0.0]),
        direction=np.eye(3),
        spacing_mm=(1.0, PX, PX),
        slice_pos_mm=np.array([1.0, 2.0, 3.0]),
    )
    f = frequency_grid(PX, 64)
    noise = {
        "full": (f, np.full_like(f, 25.0 * PX * PX), 5.0),
        "low": (f, np.full_like(f, 100.0 * PX * PX), 10.0),
    }
    vols = {"low": low, "full": full}
    rows, pooled = insert_rows("p", vols, [Insert((0, 0, 2), 8, 40)], geo, noise)
    by = {r["role"]: r for r in rows}
    assert by["low"]["dprime_npw"] / by["full"]["dprime_npw"] == pytest.approx(0.5, rel=0.1)
    assert pooled["low"].psf_sd_mm == pytest.approx(pooled["full"].psf_sd_mm, rel=0.1)
    assert by["full"]["cnr"] == pytest.approx(40.0 / 5.0, rel=0.1)


def test_demo_pair_json_lesions_are_found_in_lps(tmp_path: Path) -> None:
    """pair.json lesions (phantom frame, z head-to-foot) -> LPS (x, y, -z)."""
    pdir = tmp_path / "P1"
    (pdir / "quarter_dose").mkdir(parents=True)
    lesion = {"x_mm": 10.0, "y_mm": -5.0, "z_mm": 30.0, "radius_mm": 6.0, "contrast_hu": -15.0}
    (pdir / "pair.json").write_text(json.dumps({"low_series_uid": "1.2", "lesions": [lesion]}))
    found = find_inserts(pdir / "quarter_dose", "1.2")
    assert found == [Insert((10.0, -5.0, -30.0), 6.0, -15.0, name="lesion 1")]
    assert find_inserts(pdir / "quarter_dose", "9.9") == []  # another series' sidecar
