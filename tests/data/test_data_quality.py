"""Dataset check: noise estimator against known noise, problems found and reported."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.pairs import Pair, PairSpec, pair_volumes
from pipeline.data.quality import check_dataset, noise_sd_hu, tissue_mask


@pytest.mark.parametrize("sigma", [5.0, 20.0, 60.0])
def test_noise_estimate_matches_known_gaussian_sd_on_a_ramp(sigma):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    ramp = 0.5 * yy - 0.3 * xx  # locally linear anatomy is cancelled by the kernel
    img = ramp + rng.normal(0.0, sigma, ramp.shape).astype(np.float32)
    mask = np.ones_like(img, dtype=bool)
    mask[[0, -1], :] = mask[:, [0, -1]] = False
    assert noise_sd_hu(img, mask) == pytest.approx(sigma, rel=0.06)


def test_tissue_mask_excludes_air_and_edges():
    img = np.full((32, 32), -1000.0, np.float32)
    img[8:24, 8:24] = 40.0
    m = tissue_mask(img)
    assert m[9:23, 9:23].all() and not m[8, 8:24].any() and not m[:8].any()


def _spec(name: str) -> PairSpec:
    return PairSpec(name, None, None, layout="memory")  # type: ignore[arg-type]


def _check(tmp_path, pairs: dict[str, Pair]):
    # a manifest whose rows are resolved by a loader that returns in-memory pairs
    rows = ["patient,low,full"]
    for name in pairs:
        (tmp_path / name).mkdir()
        rows.append(f"{name},{name},{name}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    return check_dataset(tmp_path / "m.csv", loader=lambda spec: pairs[spec.patient])


def test_sound_pair_reports_noise_and_ranges(tmp_path, volume_pair):
    low, full = volume_pair(n_slices=4, size=96, seed=0, low_sd=40.0)
    report = _check(tmp_path, {"P0": pair_volumes(_spec("P0"), low, full)})
    assert report.ok, report.as_dict()
    pr = report.pairs[0]
    assert pr.n_slices == 4 and pr.shape == (4, 96, 96)
    assert pr.noise_full_hu == pytest.approx(8.0, rel=0.15)
    assert pr.noise_low_hu == pytest.approx(np.hypot(8.0, 40.0), rel=0.1)
    assert pr.noise_added_hu == pytest.approx(40.0, rel=0.1)
    assert pr.hu_full is not None and pr.hu_full[0] == pytest.approx(-1000.0, abs=40)


def test_problems_are_found(tmp_path, volume_pair):
    low, full = volume_pair(n_slices=3, size=96, seed=1)
    swapped = pair_volumes(_spec("S"), full, low)
    same = pair_volumes(_spec("I"), full, full)
    offset = pair_volumes(_spec("O"), low.with_hu(low.hu + 100.0), full)
    pad = low.hu.copy()
    pad[:, :20, :20] = -3024.0  # 4% of the voxels
    padded = pair_volumes(_spec("D"), low.with_hu(pad), full)
    report = _check(tmp_path, {"S": swapped, "I": same, "O": offset, "D": padded})
    by = {p.name: p.problems for p in report.pairs}
    assert "not above full-dose noise" in by["S"][0]
    assert by["I"] == ["low-dose and full-dose images are identical"]
    assert any("median low-full difference in tissue is +10" in m for m in by["O"]), by
    offset_report = next(p for p in report.pairs if p.name == "O")
    assert offset_report.offset_hu == pytest.approx(100.0, abs=2.0)
    assert any("4.3% of low-dose voxels are below -1100 HU (minimum -3024" in m for m in by["D"])
    assert not report.ok and report.n_problems >= 4
