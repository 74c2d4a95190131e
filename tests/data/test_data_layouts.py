"""Layout discovery: demo, Mayo, TCIA and manifests found; incomplete or ambiguous ones reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.layouts import scan_pairs
from pipeline.data.manifest import read_manifest, write_manifest
from pipeline.data.pairs import discover_pairs
from pipeline.errors import DatasetError


def _series(d: Path, n: int = 2) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        (d / f"IM{k:04d}.IMA").write_bytes(b"\0")
    return d


def test_demo_layout(tmp_path):
    for p in ("P01", "P02"):
        _series(tmp_path / p / "full_dose")
        _series(tmp_path / p / "quarter_dose")
    (tmp_path / "P01" / "full_dose" / "sim.json").write_text("{}")
    pairs = discover_pairs(tmp_path)
    assert [(p.patient, p.layout, p.dose) for p in pairs] == [
        ("P01", "demo", 0.25),
        ("P02", "demo", 0.25),
    ]
    assert pairs[0].low == tmp_path / "P01" / "quarter_dose"
    assert pairs[0].full == tmp_path / "P01" / "full_dose"


def test_mayo_layout_both_thicknesses_are_tagged(tmp_path):
    for name in ("quarter_3mm", "full_3mm", "quarter_1mm", "full_1mm"):
        _series(tmp_path / "L067" / name)
    _series(tmp_path / "L096" / "quarter_3mm")
    _series(tmp_path / "L096" / "full_3mm")
    pairs = discover_pairs(tmp_path)
    assert [p.name for p in pairs] == ["L067/1mm", "L067/3mm", "L096"]
    l067_3 = pairs[1]
    assert (l067_3.low.name, l067_3.full.name, l067_3.layout) == ("quarter_3mm", "full_3mm", "mayo")


def test_root_can_be_a_single_patient_folder(tmp_path):
    _series(tmp_path / "L067" / "quarter_3mm")
    _series(tmp_path / "L067" / "full_3mm")
    pairs = discover_pairs(tmp_path / "L067")
    assert [p.patient for p in pairs] == ["L067"]


def test_missing_partner_is_a_problem(tmp_path):
    _series(tmp_path / "P1" / "full_dose")
    _series(tmp_path / "P2" / "full_dose")
    _series(tmp_path / "P2" / "quarter_dose")
    _series(tmp_path / "L1" / "quarter_3mm")
    found = scan_pairs(tmp_path)
    assert [p.patient for p in found.pairs] == ["P2"]
    assert "P1: demo layout has full_dose/ but not its partner" in found.problems
    assert "L1: mayo layout has quarter_3mm/ but not its partner" in found.problems
    with pytest.raises(DatasetError, match="2 problem"):
        discover_pairs(tmp_path)
    assert [p.patient for p in discover_pairs(tmp_path, strict=False)] == ["P2"]


def test_unknown_layout_is_reported_and_empty_root_raises(tmp_path):
    _series(tmp_path / "X1" / "some_series")
    found = scan_pairs(tmp_path / "X1" / "..")
    assert any("no recognised low/full-dose layout" in p for p in found.problems)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no low/full-dose pairs found"):
        discover_pairs(empty)
    with pytest.raises(DatasetError, match="does not exist"):
        discover_pairs(tmp_path / "nope")


def test_tcia_layout_pairs_by_series_description(tmp_path, write_dicom_pair):
    top = tmp_path / "manifest-123" / "LDCT-and-Projection-data"
    study = top / "C002" / "01-01-2019-NA-CT abdomen-12345"
    # folder names deliberately uninformative: the header's SeriesDescription must decide
    write_dicom_pair(
        study / "2.000000-NA-222",
        study / "1.000000-NA-111",
        patient="C002",
        n_slices=2,
        size=16,
        low_desc="Quarter Dose Images",
        full_desc="Full Dose Images",
    )
    _series(study / "3.000000-Full Dose Projections-333")  # raw data, ignored by name
    pairs = discover_pairs(tmp_path / "manifest-123")
    assert len(pairs) == 1
    p = pairs[0]
    assert (p.patient, p.layout, p.dose) == ("C002", "tcia", 0.25)
    assert (p.low.name, p.full.name) == ("2.000000-NA-222", "1.000000-NA-111")


def test_tcia_two_full_dose_series_is_ambiguous(tmp_path, write_dicom_pair):
    study = tmp_path / "C003" / "study"
    write_dicom_pair(study / "low", study / "full", patient="C003", n_slices=1, size=16)
    write_dicom_pair(study / "low_b", study / "full_b", patient="C003", n_slices=1, size=16, seed=0)
    found = scan_pairs(tmp_path)
    assert not found.pairs
    assert "expected one full-dose and one low-dose image series, found 2 full" in found.problems[0]


@pytest.mark.parametrize("suffix", [".csv", ".yaml", ".json"])
def test_manifest_round_trip_and_relative_paths(tmp_path, suffix):
    low, full = _series(tmp_path / "a" / "low"), _series(tmp_path / "a" / "full")
    if suffix == ".csv":
        text = "patient,low,full,dose\nA,a/low,a/full,0.25\n"
        path = tmp_path / "m.csv"
        path.write_text(text)
    else:
        from pipeline.data.pairs import PairSpec

        path = write_manifest([PairSpec("A", low, full, 0.25)], tmp_path / f"m{suffix}")
    pairs = discover_pairs(path)
    assert [(p.patient, p.low, p.full, p.dose, p.layout) for p in pairs] == [
        ("A", low, full, 0.25, "manifest")
    ]


def test_manifest_problems_name_the_row(tmp_path):
    _series(tmp_path / "low")
    path = tmp_path / "m.csv"
    path.write_text("patient,low,full,dose,site\nA,low,missing,2.0,x\nB,,low,\n")
    pairs, problems = read_manifest(path)
    assert pairs == []
    assert problems == [
        "manifest row 1: unknown column(s) site",
        "manifest row 2: missing low; unknown column(s) site",
    ]
    path.write_text("patient,low,full,dose\nA,low,missing,2.0\nB,low,missing,\n")
    pairs, problems = read_manifest(path)
    assert problems[0] == "manifest row 1: dose 2.0 must be a fraction in (0, 1]"
    assert problems[1].startswith("manifest row 2: full path") and "does not exist" in problems[1]


def test_manifest_not_utf8_is_a_dataset_error_naming_the_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"patient,low,full\np\xe9,low,full\n")  # Latin-1 e-acute
    with pytest.raises(DatasetError, match="not UTF-8 text") as info:
        read_manifest(path)
    assert info.value.path == path


def test_demo_layout_other_simulated_doses_get_one_pair_each(tmp_path):
    _series(tmp_path / "D1" / "full_dose")
    _series(tmp_path / "D1" / "tenth_dose")
    _series(tmp_path / "D1" / "dose_7p5pct")
    pairs = discover_pairs(tmp_path)
    assert [(p.name, p.dose) for p in pairs] == [("D1/dose_7p5pct", 0.075), ("D1/tenth_dose", 0.1)]
