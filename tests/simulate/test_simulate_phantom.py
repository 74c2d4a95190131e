"""The anatomy-like phantom: deterministic, tissue classes present, continuous along z."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import SimulationError
from pipeline.simulate.phantom import make_phantom


def test_phantom_is_deterministic_and_seed_dependent() -> None:
    a = make_phantom(3, 64, seed=1)
    b = make_phantom(3, 64, seed=1)
    c = make_phantom(3, 64, seed=2)
    assert np.array_equal(a.hu, b.hu)
    assert not np.array_equal(a.hu, c.hu)
    assert a.hu.shape == (3, 64, 64) and a.hu.dtype == np.float32
    assert a.spacing_mm == pytest.approx((2.5, 380 / 64, 380 / 64))


def test_phantom_contains_ct_tissue_classes() -> None:
    ph = make_phantom(8, 128, seed=0, z_start_mm=20.0)  # lung bases + liver level
    hu = ph.hu
    frac = lambda lo, hi: float(((hu >= lo) & (hu < hi)).mean())  # noqa: E731
    assert frac(-1001, -990) > 0.2  # air around the body
    assert frac(-950, -700) > 0.005  # lung
    assert frac(-150, -50) > 0.02  # fat
    assert frac(20, 100) > 0.05  # soft tissue (liver, muscle, spleen)
    assert frac(300, 1000) > 0.001  # bone (cortex, ribs, posterior elements)
    assert ph.lesions and all(4 <= les["radius_mm"] <= 12 for les in ph.lesions)


def test_adjacent_slices_are_continuous() -> None:
    hu = make_phantom(12, 96, seed=3, slice_mm=2.0).hu
    near = np.abs(hu[1:] - hu[:-1]).mean()
    far = np.abs(hu[-1] - hu[0]).mean()
    assert near < 0.5 * far  # anatomy drifts smoothly, it does not jump from slice to slice
    assert near < 25.0


def test_same_anatomy_at_any_matrix_size() -> None:
    small = make_phantom(1, 64, seed=4, z_start_mm=100.0).hu[0]
    large = make_phantom(1, 128, seed=4, z_start_mm=100.0).hu[0]
    body_s, body_l = (small > -500).mean(), (large > -500).mean()
    assert body_s == pytest.approx(body_l, rel=0.05)


def test_bad_phantom_arguments_are_refused() -> None:
    with pytest.raises(SimulationError):
        make_phantom(0, 64, seed=0)
    with pytest.raises(SimulationError):
        make_phantom(2, 8, seed=0)
