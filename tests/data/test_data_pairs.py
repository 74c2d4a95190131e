"""Pair validation: matching slices by position, refusing every kind of mismatch with the reason."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.data.pairs import PairSpec, load_pair, match_slices, pair_volumes, slice_positions_mm
from pipeline.errors import DatasetError
from pipeline.io.volume import SliceInfo

SPEC = PairSpec("P0", None, None, layout="memory")  # type: ignore[arg-type]


def test_identical_geometry_pairs_and_keeps_voxels(volume_pair):
    low, full = volume_pair()
    pair = pair_volumes(SPEC, low, full)
    assert pair.n_slices == 6
    np.testing.assert_array_equal(pair.full.hu, full.hu)
    np.testing.assert_allclose(pair.positions_mm, 100.0 + 2.0 * np.arange(6))


def test_match_slices_maps_by_position_not_order():
    low = np.array([0.0, 2.0, 4.0, 6.0])
    full = np.array([6.0, 4.0, 2.0, 0.0]) + 0.03  # reversed order, within tolerance
    mapping, problems = match_slices(low, full, tol_mm=0.1)
    assert problems == []
    assert mapping.tolist() == [3, 2, 1, 0]


def test_full_series_in_other_slice_order_is_reindexed(volume_pair):
    low, full = volume_pair()
    order = np.arange(full.shape[0])[::-1]
    pos = slice_positions_mm(full)
    infos = [
        SliceInfo(
            path=None,
            sop_instance_uid=str(k),
            position_mm=(-24.0, -24.0, float(pos[k])),
            rescale_slope=1.0,
            rescale_intercept=-1024.0,
        )
        for k in order
    ]  # type: ignore[arg-type]
    shuffled = replace(full, hu=full.hu[order].copy(), slices=infos)
    pair = pair_volumes(SPEC, low, shuffled)
    np.testing.assert_array_equal(pair.full.hu, full.hu)  # oracle: the original order


def test_shifted_coverage_is_refused_with_counts(volume_pair):
    low, full = volume_pair()
    shifted = replace(full, origin_mm=(-24.0, -24.0, 102.0))  # one slice further along z
    with pytest.raises(DatasetError) as exc:
        pair_volumes(SPEC, low, shifted)
    msg = str(exc.value)
    assert "coverage differs" in msg
    assert "1 low-dose slice(s) without a full-dose partner" in msg
    assert "1 full-dose slice(s) without a low-dose partner" in msg


def test_half_slice_offset_is_refused_not_rounded(volume_pair):
    low, full = volume_pair()
    with pytest.raises(DatasetError, match="coverage differs"):
        pair_volumes(SPEC, low, replace(full, origin_mm=(-24.0, -24.0, 101.0)))


def test_extra_slices_are_refused(volume_pair):
    low, full = volume_pair()
    with pytest.raises(DatasetError, match="2 full-dose slice"):
        pair_volumes(SPEC, replace(low, hu=low.hu[:4].copy()), full)


def test_every_geometry_mismatch_is_listed(volume_pair):
    low, full = volume_pair()
    rot = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    bad = replace(
        full,
        spacing_mm=(2.0, 0.8, 0.8),
        origin_mm=(-20.0, -24.0, 100.0),
        direction=rot,
        meta={"FrameOfReferenceUID": "9.9.9", "PatientID": "OTHER"},
    )
    with pytest.raises(DatasetError) as exc:
        pair_volumes(SPEC, low, bad)
    msg = str(exc.value)
    for needle in (
        "pixel spacing differs",
        "orientation differs",
        "FrameOfReferenceUID differs",
        "PatientID differs",
        "in-plane origin differs",
    ):
        assert needle in msg, needle
    assert "pair 'P0' refused" in msg


def test_image_size_mismatch_is_refused(volume_pair):
    low, full = volume_pair()
    with pytest.raises(
        DatasetError, match=r"image size differs: low \(64, 64\) vs full \(64, 60\)"
    ):
        pair_volumes(SPEC, low, replace(full, hu=full.hu[:, :, :60].copy()))


def test_slice_spacing_mismatch_is_refused(volume_pair):
    low, full = volume_pair()
    with pytest.raises(DatasetError, match="slice spacing differs"):
        pair_volumes(SPEC, low, replace(full, spacing_mm=(1.0, 0.75, 0.75)))


def test_frame_of_reference_only_compared_where_present(volume_pair):
    low, full = volume_pair()
    pair_volumes(SPEC, low, replace(full, meta={}))  # no FoR on one side: accepted


def test_load_pair_reads_dicom_and_refuses_shifted_dicom(tmp_path, write_dicom_pair):
    low_dir, full_dir = write_dicom_pair(tmp_path / "low", tmp_path / "full", n_slices=3)
    pair = load_pair(PairSpec("P0", low_dir, full_dir))
    assert pair.low.shape == pair.full.shape == (3, 48, 48)
    bad_low, bad_full = write_dicom_pair(
        tmp_path / "low2", tmp_path / "full2", n_slices=3, full_origin=(-24.0, -24.0, 102.0)
    )
    with pytest.raises(DatasetError, match="coverage differs"):
        load_pair(PairSpec("P0", bad_low, bad_full))


def test_load_pair_unreadable_series_names_role(tmp_path, write_dicom_pair):
    low_dir, _ = write_dicom_pair(tmp_path / "low", tmp_path / "full", n_slices=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="cannot read full-dose series"):
        load_pair(PairSpec("P0", low_dir, empty))
