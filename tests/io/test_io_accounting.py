"""Completeness by accounting: every file the scan saw is in a series, or named as lost/skipped;
plausibility of pixels; ``ldct inspect`` shows both and never prints raw control bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_dicom_factory import make_series

from pipeline.errors import DicomError
from pipeline.io.discover import scan
from pipeline.io.hu import HuStats, Rescale, plausibility_problem
from pipeline.io.read import read_series
from pipeline.utils.text import printable


def _z_sorted(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))


def test_lost_edge_slice_is_accounted_to_its_series(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "s", n_slices=5)
    last = _z_sorted(spec.paths)[-1]
    ds = pydicom.dcmread(last)
    del ds.ImagePositionPatient
    ds.save_as(last)
    result = scan([tmp_path])
    (rec,) = result.series
    assert rec.n_slices == 4 and not rec.complete
    (lost,) = rec.lost
    assert lost.path == last and lost.reason == "missing required tag ImagePositionPatient"
    assert lost.series_uid == spec.series_uid and lost.lost
    assert any(
        w.startswith("incomplete: 1 file(s) of this series skipped at scan") for w in rec.warnings
    )
    vol = read_series(rec, workers=1, isolate=False)
    assert vol.meta["skipped_files"] == [
        {"path": str(last), "reason": "missing required tag ImagePositionPatient", "stage": "scan"}
    ]
    assert not any(w.startswith("missing slices") for w in vol.warnings)  # no gap: edge loss


def test_unattributable_file_counts_against_series_in_its_folder(tmp_path: Path) -> None:
    make_series(tmp_path / "a", n_slices=3)
    make_series(tmp_path / "b", n_slices=3, seed=1)
    (tmp_path / "a" / "empty.dcm").write_bytes(b"")
    (tmp_path / "a" / "README.txt").write_text("notes about this export\n")
    result = scan([tmp_path])
    by_folder = {rec.files[0].path.parent.name: rec for rec in result.series}
    assert [s.reason for s in by_folder["a"].lost] == ["empty file (0 bytes)"]
    assert by_folder["b"].complete  # other folder: not affected
    notdicom = [s for s in result.skipped if s.path.name == "README.txt"]
    assert notdicom and not notdicom[0].lost  # a non-DICOM file is not a lost slice


def test_series_with_every_file_skipped_is_reported(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "gone", n_slices=3)
    for p in spec.paths:
        p.write_bytes(p.read_bytes()[:-200])
    (tmp_path / "empty").mkdir()
    for i in range(2):
        (tmp_path / "empty" / f"f{i}").write_bytes(b"")
    result = scan([tmp_path])
    assert result.series == []
    by_uid = {ls.series_uid: ls for ls in result.lost_series}
    lost = by_uid[spec.series_uid]
    assert len(lost.files) == 3 and lost.study_uid == spec.study_uid
    assert lost.reason.startswith("every file of this series was skipped (3 file(s): ")
    assert "truncated file: pixel data needs" in lost.reason
    anon = by_uid[""]
    assert anon.folder == tmp_path / "empty" and len(anon.files) == 2


def test_identical_duplicate_is_not_a_conflict_but_a_moved_one_is(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "s", n_slices=3)
    (tmp_path / "s" / "copy").write_bytes(spec.paths[0].read_bytes())
    (rec,) = scan([tmp_path]).series
    assert rec.errors == [] and rec.complete
    ds = pydicom.dcmread(spec.paths[1])
    ds.SOPInstanceUID = pydicom.dcmread(spec.paths[0]).SOPInstanceUID
    ds.save_as(tmp_path / "s" / "other_slice_same_uid")
    (rec,) = scan([tmp_path]).series
    (err,) = rec.errors
    assert err.startswith("conflicting duplicate SOPInstanceUID ")
    assert "differ (ImagePositionPatient" in err
    with pytest.raises(DicomError, match="refused: conflicting duplicate SOPInstanceUID"):
        read_series(rec, workers=1, isolate=False)


@pytest.mark.parametrize(
    ("stats", "rescales", "pr", "expected"),
    [
        ([HuStats(3000.0, True, True)], {Rescale(1, -1024)}, 1, ""),
        ([HuStats(float("inf"), True, True)], {Rescale(1e30, -1024)}, 1, "HU not finite"),
        ([HuStats(1.01e6, False, True)], {Rescale(1, 1e6)}, 1, "HU up to 1.01e+06 beyond"),
        ([HuStats(64536.0, False, True)], {Rescale(1, 0)}, 0, "HU up to 64536 beyond"),
        ([HuStats(-1000.0, False, False)], {Rescale(1, -1e6)}, 1, "every voxel is below -1500"),
        ([HuStats(1100.0, False, True)], {Rescale(1, 0)}, 1, "no air anywhere in the series"),
    ],
)
def test_plausibility_reasons(
    stats: list[HuStats], rescales: set[Rescale], pr: int, expected: str
) -> None:
    got = plausibility_problem(stats, rescales, pr, 16)
    assert got.startswith(expected) if expected else got == "", got
    if pr == 0 and expected:
        assert "two's complement (signed) data declared unsigned?" in got


def test_intercept_zero_instead_of_minus_1024_is_refused(tmp_path: Path) -> None:
    """Air written as +24 HU (the classic '+1024' mistake): no air anywhere -> refused."""
    spec = make_series(tmp_path, n_slices=2)
    for p in spec.paths:
        ds = pydicom.dcmread(p)
        ds.RescaleIntercept = 0
        ds.save_as(p)
    (rec,) = scan([tmp_path]).series
    with pytest.raises(DicomError, match=r"no air anywhere in the series .* intercept 0"):
        read_series(rec, workers=1, isolate=False)


def test_matrix_limit_refuses_before_decoding(tmp_path: Path) -> None:
    spec = make_series(tmp_path, n_slices=1)
    ds = pydicom.dcmread(spec.paths[0])
    ds.Rows = ds.Columns = 8192
    ds.save_as(spec.paths[0])
    result = scan([tmp_path])
    (skip,) = result.skipped
    assert skip.reason.startswith("implausible matrix for CT: Rows x Columns = 8192 x 8192")
    assert result.lost_series[0].files == [skip]


def test_printable_escapes_undecodable_and_control_bytes() -> None:
    raw = b"a\xff\nb\x1b[31m\x00c".decode("utf-8", "surrogateescape")
    assert printable(raw) == "a\\xff\\nb\\x1b[31m\\x00c"
    assert printable("Müller^Jörg") == "Müller^Jörg"  # valid text unchanged
    printable(raw).encode("utf-8")  # always encodable


def test_inspect_escapes_tags_and_lists_lost(tmp_path: Path, run_cli: Callable) -> None:
    spec = make_series(tmp_path / "s", n_slices=3, description="evil\x1b[2J\x00desc")
    lost = _z_sorted(spec.paths)[0]
    lost.write_bytes(lost.read_bytes()[:-100])
    res = run_cli("inspect", tmp_path)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "\x1b" not in res.stdout and "\x00" not in res.stdout
    assert "evil\\x1b[2J\\x00desc" in res.stdout.replace("\n", "")  # rich may fold the cell
    assert "INCOMPLETE: 1 file(s) of this series not usable" in res.stdout
    res = run_cli("inspect", tmp_path, "--json")
    doc = json.loads(res.stdout)
    (row,) = doc["series"]
    assert [f["path"] for f in row["lost_files"]] == [str(lost)]
    assert doc["lost_series"] == []
    np.testing.assert_equal(row["slices"], 2)


def test_inspect_many_series_prints_a_plain_table(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above RICH_TABLE_MAX_ROWS series per study the table is plain text, same columns."""
    from pipeline.cli.commands import inspect as inspect_cmd

    study = pydicom.uid.generate_uid()
    make_series(tmp_path / "a", n_slices=2, study_uid=study, description="first\x1b")
    make_series(tmp_path / "b", n_slices=3, study_uid=study, seed=1, series_number=2)
    monkeypatch.setattr(inspect_cmd, "RICH_TABLE_MAX_ROWS", 1)
    res = run_cli("inspect", tmp_path)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("#  "))
    header = "# series description slices size spacing z/y/x mm HU range transfer syntax"
    assert lines[head].split() == header.split()
    assert set(lines[head + 1]) <= {"-", " "}
    row1, row2 = lines[head + 2].split(), lines[head + 3].split()
    assert row1[:4] == ["1", "1", "first\\x1b", "2"] and row2[:4] == ["2", "2", "test", "series"]
    assert "\x1b" not in res.stdout
