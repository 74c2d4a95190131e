"""Seam test applicability: whole-slice inference has no tile borders."""

import numpy as np


def test_seam_flag_off_for_whole_slice_inference_but_spectral_flag_stays():
    """No tile borders exist when slices were denoised whole: seams cannot flag, grids can."""
    from pipeline.evaluate.artifacts import flag_patient, score_slice

    rng = np.random.default_rng(5)
    base = rng.normal(0, 10, (128, 128))
    seam = base.copy()
    seam[:, 64:] += 40.0  # a strong step at x=64 in every slice
    with_seams = [score_slice(seam) for _ in range(4)]
    assert flag_patient(with_seams).flagged
    no_seams = [score_slice(seam, check_seams=False) for _ in range(4)]
    verdict = flag_patient(no_seams, check_seams=False)
    assert not verdict.flagged and "seam test n/a" in verdict.evidence
    yy, xx = np.mgrid[:128, :128]
    grid = [score_slice(base + 8.0 * (-1.0) ** (yy + xx), check_seams=False) for _ in range(4)]
    assert flag_patient(grid, check_seams=False).flagged
