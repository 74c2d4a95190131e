"""Slice sorting and spacing: along the normal, irregularities reported (never averaged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from io_dicom_factory import make_series

from pipeline.errors import GeometryError
from pipeline.io.read import read_volume

OBLIQUE = (0.8660254, 0.5, 0.0, -0.5, 0.8660254, 0.0)


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), OBLIQUE, (1, 0, 0, 0, 0, -1)])
def test_sorted_along_normal_not_by_name_or_instance(tmp_path: Path, orientation: tuple) -> None:
    spec = make_series(tmp_path, n_slices=6, orientation=orientation, names="instance")
    vol = read_volume(tmp_path)
    # the factory's hu is indexed by position; InstanceNumber and file names run backwards
    np.testing.assert_array_equal(vol.hu, spec.hu.astype(np.float32))
    normal = np.cross(orientation[:3], orientation[3:])
    dist = [float(np.dot(s.position_mm, normal)) for s in vol.slices]
    assert dist == sorted(dist)


def test_affine_maps_every_voxel_row_to_its_slice_position(tmp_path: Path) -> None:
    make_series(tmp_path, n_slices=5, orientation=OBLIQUE, spacing=(1.5, 0.7, 0.9))
    vol = read_volume(tmp_path)
    assert vol.spacing_mm == pytest.approx((1.5, 0.7, 0.9))
    for k, s in enumerate(vol.slices):
        world = vol.affine @ np.array([0, 0, k, 1.0])
        np.testing.assert_allclose(world[:3], s.position_mm, atol=1e-3)
    # column 0 of direction is the row cosine, column 1 the column cosine
    np.testing.assert_allclose(vol.direction[:, 0], OBLIQUE[:3], atol=1e-6)
    np.testing.assert_allclose(vol.direction[:, 1], OBLIQUE[3:], atol=1e-6)
    assert vol.origin_mm == pytest.approx(vol.slices[0].position_mm)


def _z_positions(zs: list[float]) -> list[tuple[float, float, float]]:
    return [(-8.0, -9.0, z) for z in zs]


def test_missing_slice_is_reported(tmp_path: Path) -> None:
    make_series(tmp_path, n_slices=4, positions=_z_positions([0, 2.5, 7.5, 10.0]))
    vol = read_volume(tmp_path)
    assert vol.spacing_mm[0] == pytest.approx(2.5)
    assert any("missing slices: 1 slice(s) absent at 2.50->7.50 mm" in w for w in vol.warnings)


def test_irregular_spacing_is_reported(tmp_path: Path) -> None:
    make_series(tmp_path, n_slices=5, positions=_z_positions([0, 2.5, 5.0, 6.0, 8.5]))
    vol = read_volume(tmp_path)
    assert any(
        w.startswith("irregular slice spacing: steps from 1.000 to 2.500") for w in vol.warnings
    )


def test_regular_series_has_no_warning(tmp_path: Path) -> None:
    make_series(tmp_path, n_slices=5)
    assert read_volume(tmp_path).warnings == []


def test_duplicate_positions_refused(tmp_path: Path) -> None:
    make_series(tmp_path, n_slices=4, positions=_z_positions([0, 2.5, 2.5, 5.0]))
    with pytest.raises(GeometryError, match=r"1 slice position\(s\) hold more than one image"):
        read_volume(tmp_path)


def test_gantry_tilt_is_reported(tmp_path: Path) -> None:
    # positions advance along z but also along y: a tilted gantry (15 degrees)
    shift = np.tan(np.deg2rad(15.0)) * 2.5
    pos = [(-8.0, -9.0 + k * shift, k * 2.5) for k in range(4)]
    make_series(tmp_path, n_slices=4, positions=pos)
    vol = read_volume(tmp_path)
    tilt = [w for w in vol.warnings if w.startswith("gantry tilt")]
    assert tilt and "15.00 deg" in tilt[0]


def test_single_slice_uses_thickness(tmp_path: Path) -> None:
    make_series(tmp_path, n_slices=1, spacing=(3.0, 0.5, 0.5))
    vol = read_volume(tmp_path)
    assert vol.spacing_mm == pytest.approx((3.0, 0.5, 0.5))


def test_header_tilt_and_frame_of_reference_warnings(tmp_path: Path) -> None:
    make_series(tmp_path / "a", n_slices=3, extra_tags={"GantryDetectorTilt": 12.0})
    vol = read_volume(tmp_path / "a")
    assert "GantryDetectorTilt [12.0] deg in the headers" in vol.warnings
    spec = make_series(tmp_path / "b", n_slices=3, shuffle=False)
    import pydicom

    ds = pydicom.dcmread(spec.paths[0])
    ds.FrameOfReferenceUID = "1.2.3.4"
    ds.save_as(spec.paths[0])
    vol = read_volume(tmp_path / "b")
    assert any(
        w.startswith("files disagree on FrameOfReferenceUID (2 values)") for w in vol.warnings
    )
