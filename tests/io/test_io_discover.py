"""scan(): discovery, grouping into series, splitting, and a reason for every skipped file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from io_dicom_factory import make_other, make_series
from pydicom.data import get_testdata_file

from pipeline.io.discover import scan


def _reasons(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {s.path.name: s.reason for s in result.skipped}


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_multi_series_folder_with_clutter(tmp_path: Path) -> None:
    a = make_series(tmp_path, n_slices=5, description="soft", series_number=2, seed=1)
    b = make_series(tmp_path, n_slices=3, description="lung", series_number=3, seed=2,
                    study_uid=a.study_uid)  # fmt: skip
    make_series(tmp_path / "scout", n_slices=1, image_type=("ORIGINAL", "PRIMARY", " localizer "),
                study_uid=a.study_uid)  # fmt: skip
    make_other(tmp_path / "dose.sr", "sr", a.study_uid)
    make_other(tmp_path / "shot.dcm", "sc", a.study_uid)
    make_other(tmp_path / "brain_mr", "mr")
    make_other(tmp_path / "header_only.dcm", "nopixels")
    (tmp_path / "notes.txt").write_text("not dicom")
    result = scan([tmp_path])
    assert [(r.description, r.n_slices) for r in result.series] == [("soft", 5), ("lung", 3)]
    assert {r.series_uid for r in result.series} == {a.series_uid, b.series_uid}
    reasons = _reasons(result)
    assert reasons["dose.sr"].startswith("structured report")
    assert reasons["shot.dcm"].startswith("secondary capture")
    assert reasons["brain_mr"].startswith("not CT (Modality MR")
    assert reasons["header_only.dcm"].startswith("no pixel data")
    assert reasons["notes.txt"].startswith("not a DICOM file")
    scout = [s for s in result.skipped if s.path.parent.name == "scout"]
    assert len(scout) == 1 and scout[0].reason.startswith("localizer/scout image")
    assert result.n_files == 5 + 3 + 1 + 4 + 1  # slices, scout, other objects, text


def test_series_split_by_size_and_orientation(tmp_path: Path) -> None:
    a = make_series(tmp_path / "x", n_slices=3, rows=24)
    make_series(tmp_path / "y", n_slices=2, rows=32, study_uid=a.study_uid, series_uid=a.series_uid)
    make_series(tmp_path / "z", n_slices=2, orientation=(1, 0, 0, 0, 0, -1),
                study_uid=a.study_uid, series_uid=a.series_uid)  # fmt: skip
    result = scan([tmp_path])
    parts = sorted((r.part, r.shape) for r in result.series)
    assert parts == [(1, (3, 24, 20)), (2, (2, 32, 20)), (3, (2, 24, 20))]
    assert all("split into 3 parts" in r.warnings[0] for r in result.series)


def test_duplicate_file_is_skipped_with_reason(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "s", n_slices=3)
    copy = tmp_path / "s" / "zz_copy"
    shutil.copy(spec.paths[0], copy)
    result = scan([tmp_path])
    assert result.series[0].n_slices == 3
    (skip,) = result.skipped
    assert skip.reason.startswith("duplicate of ") and "same SOPInstanceUID" in skip.reason


def test_scan_is_deterministic_and_accepts_files(tmp_path: Path) -> None:
    spec = make_series(tmp_path, n_slices=4)
    a, b = scan(tmp_path), scan([tmp_path])
    assert [f.path for f in a.series[0].files] == [f.path for f in b.series[0].files]
    assert [f.path for f in a.series[0].files] == sorted(spec.paths)
    single = scan(spec.paths[:2])
    assert single.series[0].n_slices == 2


def test_dicomdir_tests_folder() -> None:
    root = Path(get_testdata_file("DICOMDIR", download=False)).parent
    result = scan([root])
    ct = {(r.patient_id, r.description, r.n_slices) for r in result.series}
    assert ct == {("77654033", "Routine Brain", 4), ("98890234", "SmartScore - Gated 0.5 sec", 5)}
    reasons = [s.reason for s in result.skipped]
    assert sum(r.startswith("localizer/scout image") for r in reasons) == 2
    assert sum(r.startswith("DICOMDIR") for r in reasons) >= 7
    assert result.n_files == len(result.skipped) + sum(len(r.files) for r in result.series)
