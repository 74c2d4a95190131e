"""``ldct dataset check|split|pairs`` end to end on tiny DICOM trees."""

from __future__ import annotations

import json

import yaml

from pipeline.errors import ExitCode


def _cohort(root, write_dicom_pair, n=3):
    for i in range(n):
        p = f"P{i}"
        write_dicom_pair(
            root / p / "quarter_dose",
            root / p / "full_dose",
            patient=p,
            seed=i,
            n_slices=3,
            size=48,
        )


def test_check_sound_dataset_exits_zero_with_summary(tmp_path, write_dicom_pair, run_cli):
    _cohort(tmp_path / "ds", write_dicom_pair)
    res = run_cli("dataset", "check", tmp_path / "ds", "--json", tmp_path / "r.json")
    assert res.exit_code == ExitCode.OK, res.stdout + res.stderr
    assert "3 pair(s), sound" in res.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and [p["n_slices"] for p in report["pairs"]] == [3, 3, 3]
    assert report["pairs"][0]["spacing_mm"] == [2.0, 0.75, 0.75]


def test_check_reports_every_problem_and_fails(tmp_path, write_dicom_pair, run_cli):
    root = tmp_path / "ds"
    _cohort(root, write_dicom_pair, n=1)
    write_dicom_pair(
        root / "BAD" / "quarter_dose",
        root / "BAD" / "full_dose",
        patient="BAD",
        n_slices=3,
        size=48,
        full_origin=(-24.0, -24.0, 104.0),
    )
    (root / "HALF" / "full_dose").mkdir(parents=True)
    (root / "HALF" / "full_dose" / "x.dcm").write_bytes(b"\0")
    res = run_cli("dataset", "check", root)
    assert res.exit_code == ExitCode.PARTIAL_FAILURE
    out = " ".join(res.stdout.split())  # rich may wrap long lines
    assert "HALF: demo layout has full_dose/ but not its partner" in out
    assert "PROBLEM BAD: pair 'BAD' refused" in out and "coverage differs" in out
    assert "2 pair(s), 2 problem(s)" in out


def test_split_writes_reproducible_manifest(tmp_path, write_dicom_pair, run_cli):
    root = tmp_path / "ds"
    _cohort(root, write_dicom_pair, n=4)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert run_cli("dataset", "split", root, "--out", a, "--seed", "3").exit_code == 0
    assert run_cli("dataset", "split", root, "--out", b, "--seed", "3").exit_code == 0
    da, db = yaml.safe_load(a.read_text()), yaml.safe_load(b.read_text())
    assert da == db
    assert sorted(da["train"] + da["val"] + da["test"]) == ["P0", "P1", "P2", "P3"]
    assert da["pairs"]["P0"]["split"] in ("train", "val", "test")


def test_split_explicit_lists_and_leak_refused(tmp_path, write_dicom_pair, run_cli):
    root = tmp_path / "ds"
    _cohort(root, write_dicom_pair, n=3)
    out = tmp_path / "s.json"
    res = run_cli(
        "dataset", "split", root, "--out", out, "--train-patients", "P0,P1", "--test-patients", "P2"
    )
    assert res.exit_code == 0, res.stderr
    assert json.loads(out.read_text())["test"] == ["P2"]
    res = run_cli(
        "dataset",
        "split",
        root,
        "--out",
        out,
        "--train-patients",
        "P0,P1,P2",
        "--test-patients",
        "P2",
    )
    assert res.exit_code == ExitCode.INPUT
    assert "patient 'P2' is in both train and test" in res.stderr


def test_pairs_lists_and_writes_manifest(tmp_path, write_dicom_pair, run_cli):
    root = tmp_path / "ds"
    _cohort(root, write_dicom_pair, n=2)
    res = run_cli("dataset", "pairs", root, "--out", tmp_path / "m.csv")
    assert res.exit_code == 0
    assert res.stdout.count("\tdemo\tdose=0.25") == 2
    res = run_cli("dataset", "check", tmp_path / "m.csv")
    assert res.exit_code == 0 and "2 pair(s), sound" in res.stdout


def test_check_missing_root_is_input_error(tmp_path, run_cli):
    res = run_cli("dataset", "check", tmp_path / "nope")
    assert res.exit_code == ExitCode.INPUT
    assert "dataset root does not exist" in res.stderr
