"""The held-out benchmark set (pipeline.simulate.heldout): deterministic, its own family, never
used by training, quarter dose doubles the noise SD; the FBP filters against scikit-image."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.simulate import heldout as H
from pipeline.simulate.phantom import make_phantom

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"size": 64, "pixel_mm": 4 * H.HELDOUT_PIXEL_MM}  # same 379 mm FOV as 256^2, 1.48 mm


def test_phantom_is_deterministic_per_seed_and_seeds_differ() -> None:
    a = H.heldout_phantom(H.HELDOUT_SEED_BASE, **SMALL)
    np.testing.assert_array_equal(a, H.heldout_phantom(H.HELDOUT_SEED_BASE, **SMALL))
    assert a.shape == (64, 64) and a.dtype == np.float32
    assert not np.array_equal(a, H.heldout_phantom(H.HELDOUT_SEED_BASE + 1, **SMALL))
    assert a[0, 0] == -1000.0 and a.max() > 0  # air outside, an object inside the FOV


@pytest.fixture(scope="module")
def pair() -> H.HeldoutSlice:
    (p,) = H.phantom_pairs(1, **SMALL)
    return p


def test_pairs_are_deterministic(pair: H.HeldoutSlice) -> None:
    p = pair
    (q,) = H.phantom_pairs(1, **SMALL)
    np.testing.assert_array_equal(p.low_hu, q.low_hu)
    np.testing.assert_array_equal(p.full_hu, q.full_hu)
    assert p.info["filter"] == "cosine" and p.info["n_views"] == H.HELDOUT_VIEWS


def test_quarter_dose_doubles_the_noise_sd(pair: H.HeldoutSlice) -> None:
    """Two noise realisations of one phantom: SD(low noise) / SD(full noise) ~ 1/sqrt(0.25)."""
    a = pair
    (b,) = H.phantom_pairs(1, noise_seed=7, **SMALL)
    body = H.heldout_phantom(H.HELDOUT_SEED_BASE, **SMALL) > -500
    ratio = (a.low_hu - b.low_hu)[body].std() / (a.full_hu - b.full_hu)[body].std()
    assert 1.8 < ratio < 2.4  # 2 from photon statistics, a little more from electronic noise


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    x, y = np.clip(a, -160, 240), np.clip(b, -160, 240)
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def test_family_differs_from_the_training_phantom_generator() -> None:
    """No held-out phantom is a near-copy of a training phantom at the same matrix and FOV,
    while phantoms within each family are (the check would see a shared generator)."""
    fov = 64 * SMALL["pixel_mm"]
    held = [H.heldout_phantom(H.HELDOUT_SEED_BASE + i, **SMALL) for i in range(6)]
    train = [make_phantom(1, 64, s, fov_mm=fov).hu[0] for s in range(12)]
    cross = max(_corr(h, t) for h in held for t in train)
    within = max(_corr(a, b) for i, a in enumerate(held) for b in held[i + 1 :])
    assert cross < 0.8 < within


#: What loading the held-out data looks like (a comment naming the benchmark is fine).
GUARDED = re.compile(
    r"simulate\.heldout|simulate import heldout|import heldout|heldout_phantom|phantom_pairs"
    r"|real_pairs|get_testdata|from pydicom import data\b|pydicom\.data\b(?!set|dict|elem)"
    r"|data_store"
)


def test_no_training_code_or_config_touches_the_heldout_data() -> None:
    """Only the held-out module and the benchmark may name it or the pydicom test files."""
    offenders = []
    files = [*(ROOT / "pipeline").rglob("*.py"), *(ROOT / "configs").rglob("*")]
    for path in files:
        if path.is_dir() or path.name == "heldout.py":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        names = [n for n in H.REAL_FILES if n in text]
        if GUARDED.search(text) or names:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.slow  # ~10-20 s: builds the projector of CT_small's 128^2 geometry
def test_real_pairs_add_noise_to_the_original_and_report_missing_files() -> None:
    slices, missing = H.real_pairs(("CT_small.dcm", "no-such-file.dcm"))
    assert missing == ["no-such-file.dcm"]
    (s,) = slices
    assert s.part == "real" and s.low_hu.shape == s.full_hu.shape == (128, 128)
    added = s.low_hu - s.full_hu
    assert added.std() > 5.0  # quarter dose adds noise; the reference is the original slice
    assert s.info["dose"] == 0.25
    assert s.info["warnings"]  # CT_small is a cropped field of view: recorded, not hidden


@pytest.mark.parametrize("name", ["ramp", "shepp-logan", "cosine", "hann"])
def test_fbp_filter_responses_match_scikit_image(name: str) -> None:
    """Our windowed ramp = scikit-image's iradon filter / 2 (it folds the factor 2 in)."""
    from skimage.transform.radon_transform import _get_fourier_filter

    from pipeline.simulate.projector import filter_response

    ours = 2.0 * filter_response(name, 512).double().numpy()
    ref = _get_fourier_filter(512, name)[:, 0]
    # skimage's Hann is np.hanning (a symmetric window over M - 1 samples): 0.3 % apart
    atol = 4e-3 if name == "hann" else 1e-6
    np.testing.assert_allclose(ours, ref, atol=atol)
    if name == "cosine":  # the window itself: cos(pi f), f in cycles/sample
        f = np.fft.fftfreq(512)
        ramp = 2.0 * filter_response("ramp", 512).double().numpy()
        np.testing.assert_allclose(ours[1:], ramp[1:] * np.cos(np.pi * f[1:]), atol=1e-9)


@pytest.mark.parametrize(
    ("line", "caught"),
    [
        ("from pipeline.simulate import heldout", True),
        ("x = get_testdata_file('693_UNCR.dcm')", True),
        ("import pydicom.data", True),
        ("pairs = phantom_pairs(8)", True),
        ("# never trained on the benchmarks/bench_heldout.py set", False),
        ("from pydicom.dataset import Dataset", False),
    ],
)
def test_the_guard_catches_loading_not_mentioning(line: str, caught: bool) -> None:
    assert bool(GUARDED.search(line)) is caught
