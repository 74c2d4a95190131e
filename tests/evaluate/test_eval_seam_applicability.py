"""Seam test applicability: whole-slice inference has no tile borders."""

import numpy as np


def test_seam_flag_off_for_whole_slice_inference_but_spectral_flag_stays():
    """No tile borders exist when slices were denoised whole: seams cannot flag, grids can."""
    from pipeline.evaluate.artifacts import flag_patient, score_slice, seam_lines_for

    rng = np.random.default_rng(5)
    base = rng.normal(0, 10, (128, 128))
    seam = base.copy()
    seam[:, 64:] += 40.0  # a strong step at x=64 in every slice
    with_seams = [score_slice(seam, tile_stride_px=64) for _ in range(4)]
    assert flag_patient(with_seams, seam_lines=seam_lines_for((128, 128), 64)).flagged
    no_seams = [score_slice(seam, check_seams=False) for _ in range(4)]
    verdict = flag_patient(no_seams, check_seams=False)
    assert not verdict.flagged and "seam test n/a" in verdict.evidence
    yy, xx = np.mgrid[:128, :128]
    grid = [score_slice(base + 8.0 * (-1.0) ** (yy + xx), check_seams=False) for _ in range(4)]
    assert flag_patient(grid, check_seams=False).flagged


def test_tile_border_lines_follow_the_tiler() -> None:
    from pipeline.evaluate.artifacts import tile_border_lines
    from pipeline.infer.tiling import tile_starts

    lines = set(tile_border_lines(512, 224, 256).tolist())
    for s in tile_starts(512, 256, 16):  # tile 256, stride 224 -> margin 16
        for c in (s + 16, s + 256 - 16):
            if 1 <= c < 512:
                assert {c - 1, c, c + 1} & lines == {c - 1, c, c + 1} & set(range(1, 512))
    assert set(tile_border_lines(256, 64).tolist()) == {63, 64, 65, 127, 128, 129, 191, 192, 193}


def test_blurred_smoothed_and_bm3d_like_series_are_not_flagged() -> None:
    """Negatives: a residual holding the input's edges is not a seam (no tile grid known),
    and with a known grid only its borders are tested (anatomy elsewhere does not count)."""
    from scipy import ndimage as ndi

    from pipeline.evaluate.artifacts import flag_patient, score_slice, seam_lines_for
    from pipeline.evaluate.qa import inner_mask
    from pipeline.simulate.phantom import make_phantom

    ph = make_phantom(6, 256, seed=4)
    rng = np.random.default_rng(0)
    low = ph.hu + rng.normal(0, 25.0, ph.hu.shape).astype(np.float32)
    outputs = {
        "gaussian sigma 2": np.stack([ndi.gaussian_filter(s, 2.0) for s in low]),
        "median 5": np.stack([ndi.median_filter(s, 5) for s in low]),
        # BM3D-like: near-clean anatomy plus a little residual noise (edges preserved)
        "bm3d-like": ph.hu + rng.normal(0, 4.0, ph.hu.shape).astype(np.float32),
    }
    for name, den in outputs.items():
        slices = []
        for z in range(6):
            m = inner_mask(low[z] > -500)
            slices.append(score_slice(den[z] - low[z], m, input_hu=low[z]))
        pat = flag_patient(slices, seam_lines=None, seam_na="tile grid unknown")
        assert not pat.flagged, (name, pat.evidence)
        assert "seam test n/a: tile grid unknown" in pat.evidence
        tiled = [
            score_slice(den[z] - low[z], inner_mask(low[z] > -500), input_hu=low[z],
                        tile_stride_px=224, tile_px=256)
            for z in range(6)
        ]  # fmt: skip
        lines = seam_lines_for((256, 256), 224, 256)
        assert not flag_patient(tiled, seam_lines=lines).flagged, name


def test_blurred_low_contrast_edge_is_not_a_seam() -> None:
    """Regression: a Gaussian-blurred series whose residual keeps a straight 15-HU anatomical
    edge at x=125 was flagged 'seam at x=125' (z 67); with no tile grid it cannot be a seam,
    and with a known grid (256 px tiles, stride 224) x=125 is no tile border."""
    from scipy import ndimage as ndi

    from pipeline.evaluate.artifacts import flag_patient, score_slice, seam_lines_for
    from pipeline.evaluate.qa import inner_mask

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    body = ((yy - 128) / 110.0) ** 2 + ((xx - 128) / 120.0) ** 2 <= 1
    clean = np.where(body, 40.0 + 15.0 * (xx >= 125), -1000.0)
    low = np.stack([clean + rng.normal(0, 25, clean.shape) * body for _ in range(6)])
    full = np.stack([clean + rng.normal(0, 12, clean.shape) * body for _ in range(6)])
    den = np.stack([ndi.gaussian_filter(s, 2.0) for s in low])
    m = inner_mask(body)
    plain = [score_slice(den[z] - full[z], m, input_hu=low[z]) for z in range(6)]
    assert max(s.seam.z for s in plain) > 20  # the edge is there, as a line discontinuity
    assert not flag_patient(plain, seam_lines=None, seam_na="tile grid unknown").flagged
    tiled = [
        score_slice(den[z] - full[z], m, input_hu=low[z], tile_stride_px=224, tile_px=256)
        for z in range(6)
    ]
    assert not flag_patient(tiled, seam_lines=seam_lines_for((256, 256), 224, 256)).flagged
