"""``ldct inspect``: tables, JSON, skipped files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from io_dicom_factory import make_other, make_series


def test_inspect_text_and_json(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    a = make_series(tmp_path / "p1", n_slices=4, description="soft tissue", patient_id="P1",
                    padding_stored=-2000)  # fmt: skip
    make_series(tmp_path / "p2", n_slices=3, positions=[(0, 0, 0), (0, 0, 2.5), (0, 0, 7.5)],
                description="with gap", patient_id="P2")  # fmt: skip
    make_other(tmp_path / "dose.sr", "sr", a.study_uid)
    res = run_cli("inspect", str(tmp_path))
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert "2 CT series in 2 studies, 1 file(s) skipped" in out
    assert "soft tissue" in out and "with gap" in out and "P1" in out
    assert "missing slices: 1 slice(s)" in out
    assert "dose.sr: structured report" in out
    res = run_cli("inspect", str(tmp_path), "--json")
    doc = json.loads(res.stdout)
    rows = {r["description"]: r for r in doc["series"]}
    soft = rows["soft tissue"]
    assert soft["slices"] == 4 and [soft["rows"], soft["columns"]] == [24, 20]
    assert soft["spacing_mm"] == [2.5, 0.75, 0.8]
    tissue = a.hu[~a.padding]
    assert (soft["hu_min"], soft["hu_max"]) == (tissue.min(), tissue.max())
    assert soft["padding_voxels"] == int(a.padding.sum())
    assert soft["transfer_syntaxes"] == ["Explicit VR Little Endian"]
    assert rows["with gap"]["warnings"]
    assert doc["skipped"][0]["reason"].startswith("structured report")


def test_inspect_headers_only(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    make_series(tmp_path, n_slices=3)
    doc = json.loads(run_cli("inspect", str(tmp_path), "--json", "--headers-only").stdout)
    (row,) = doc["series"]
    assert row["hu_min"] is None and row["spacing_mm"] == [2.5, 0.75, 0.8]


def test_inspect_nothing_readable(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "readme.txt").write_text("hello")
    res = run_cli("inspect", str(tmp_path))
    assert res.exit_code == 3
    assert "readme.txt: not a DICOM file" in res.stdout
    assert "nothing readable" in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("inspect", str(empty)).exit_code == 3
    assert run_cli("inspect", str(tmp_path / "missing")).exit_code == 3
