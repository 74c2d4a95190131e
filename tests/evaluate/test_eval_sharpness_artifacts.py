"""Edge sharpness vs an analytic blurred step; grid/seam detector on injected patterns."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from pipeline.evaluate.artifacts import (
    DEFAULT_THRESHOLDS,
    flag_patient,
    quiet_mask,
    score_slice,
    seam_lines_for,
    seam_scan,
    spectrum_for_plot,
)
from pipeline.evaluate.qa import inner_mask
from pipeline.evaluate.sharpness import edge_spread


def test_edge_rise_matches_gaussian_blur() -> None:
    h = w = 256
    yy, xx = np.mgrid[0:h, 0:w]
    disk = (yy - 128) ** 2 + (xx - 128) ** 2 <= 90**2
    step = np.where(disk, 0.0, -1000.0)
    rises = []
    for s in (1.5, 2.0, 3.0):
        img = ndi.gaussian_filter(step, s)
        prof = edge_spread(img, disk, pixel_mm=0.5, max_dist_px=10.0)
        expected_mm = 2 * 1.2816 * s * 0.5  # 10-90 % of an erf edge = 2.563 sigma
        # pixel-grid distances to a rasterised outline bias it by < 12 %
        assert abs(prof.rise_10_90_mm - expected_mm) / expected_mm < 0.12
        assert abs(prof.height_hu - 1000.0) < 20.0
        rises.append(prof.rise_10_90_mm)
    assert rises == sorted(rises)  # blurrier -> wider


def _phantom_residuals(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(low, denoised-like) pairs: ellipse phantom + correlated noise, Gaussian-smoothed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    body = ((yy - 128) / 100.0) ** 2 + ((xx - 128) / 115.0) ** 2 <= 1
    hu = np.where(body, 40.0, -1000.0)
    hu[((yy - 110) / 30.0) ** 2 + ((xx - 90) / 20.0) ** 2 <= 1] = 300.0
    out = []
    for _ in range(n):
        noise = ndi.gaussian_filter(rng.standard_normal((256, 256)), 0.8)
        low = hu + 30.0 * noise / noise.std()
        out.append((low, ndi.gaussian_filter(low, 1.5)))
    return out


def _checker(period: int, amp: float, shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return amp * np.where(((yy // (period // 2)) + (xx // (period // 2))) % 2 == 0, 1.0, -1.0)


def test_clean_slices_not_flagged_and_checkerboard_flagged() -> None:
    pairs = _phantom_residuals(6, 0)
    clean = [score_slice(den - low, inner_mask(low > -500), input_hu=low) for low, den in pairs]
    assert not any(s.flagged for s in clean)
    assert not flag_patient(clean).flagged
    bad = [score_slice(den + _checker(2, 3.0) - low, input_hu=low) for low, den in pairs]
    assert all(s.flagged for s in bad)
    pat = flag_patient(bad)
    assert pat.flagged and pat.top_period_px == 2 and pat.top_axis == "xy"
    assert "period 2 px (xy)" in pat.evidence and "6/6" in pat.evidence


def test_grid_lines_and_tile_stride_detected() -> None:
    low, den = _phantom_residuals(1, 1)[0]
    xx = np.arange(256)[None, :]
    lines = 15.0 * (xx % 8 == 0)  # vertical lines every 8 px
    s = score_slice(den + lines - low)
    assert s.flagged and s.top is not None and s.top.axis == "x" and s.top.period_px == 8


def test_seam_detected_at_tile_border() -> None:
    low, den = _phantom_residuals(1, 2)[0]
    seam = np.zeros_like(den)
    seam[:, 128:] = 30.0  # a 30-HU offset between two tiles (one slice)
    quiet = quiet_mask(low, inner_mask(low > -500))
    res = seam_scan(den + seam - low, quiet)
    assert res.line == "x=128" and res.z >= DEFAULT_THRESHOLDS.seam_z
    clean = seam_scan(den - low, quiet)
    assert clean.z < DEFAULT_THRESHOLDS.seam_z


def test_seam_pooled_over_slices_flags_patient() -> None:
    pairs = _phantom_residuals(8, 4)
    seam = np.zeros((256, 256))
    seam[:, 128:] = 20.0
    res = [
        score_slice(den + seam - low, inner_mask(low > -500), input_hu=low, tile_stride_px=128)
        for low, den in pairs
    ]
    pat = flag_patient(res, seam_lines=seam_lines_for((256, 256), 128))
    assert pat.flagged and "seam at x=128" in pat.evidence
    assert pat.max_seam_z >= DEFAULT_THRESHOLDS.seam_z_pooled


def test_spectrum_for_plot_shapes() -> None:
    low, den = _phantom_residuals(1, 3)[0]
    logp, fy, fx, peaks = spectrum_for_plot(den + _checker(4, 5.0) - low, tile_stride_px=96)
    assert logp.shape == (256, 256) and fy.shape == (256,) and fx[128] == 0.0
    best = max(peaks, key=lambda p: p.ratio_db)
    assert best.period_px == 4
    assert any(p.period_px == 96 for p in peaks)
