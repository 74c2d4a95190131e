"""``ldct denoise`` end to end on tiny synthetic DICOM trees (identity and non-identity models)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from infer_helpers import (
    compress_rle,
    identity_checkpoint,
    smoothing_checkpoint,
    tree_hashes,
    truncate,
    write_series,
)

from pipeline.infer.publish import MARKER, STAGING_DIR
from pipeline.io.read import read_volume

SET = ("--set", "read_workers=1")


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    """Two patients (one with a hostile PatientID), a 1-slice odd-size series, a scout."""
    root = tmp_path / "in"
    write_series(root / "p1" / "ax", n_slices=4, patient_id="../../x", padding=True)
    write_series(root / "p2" / "odd", n_slices=1, rows=37, cols=29, seed=1, description="ODD")
    write_series(root / "p2" / "scout", n_slices=1, seed=2, description="Scout AP")
    return root


def _series_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("dicom/st-*/se-*") if p.is_dir())


def test_identity_round_trip_and_safety(cohort: Path, tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "out"
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    before = tree_hashes(cohort)
    res = run_cli("denoise", cohort, "--out", out, "--model", ckpt, *SET)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert tree_hashes(cohort) == before  # inputs byte-identical
    dirs = _series_dirs(out)
    assert len(dirs) == 2  # the scout is skipped by the rules
    assert all(d.resolve().is_relative_to(out.resolve()) for d in out.rglob("*"))
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "x").exists()
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    assert sorted(r["status"] for r in rows) == ["ok", "ok", "skipped"]
    for row in rows:
        if row["status"] != "ok":
            assert "scout" in row["reason"].lower()
            assert row["tile_size_px"] is None  # not inferred: the tiling is not known
            continue
        # small slices go through whole; the integers are what ldct evaluate reads
        assert (row["tile_size_px"], row["tile_stride_px"], row["tile_overlap_px"]) == (0, 0, 0)
        assert row["tiling"] == "whole slices"
        src = read_volume(row["input_path"])
        der = read_volume(row["output_path"])
        # identity model: HU equal within stored-value quantisation (slope 1 -> exact)
        np.testing.assert_array_equal(der.hu, src.hu)
        np.testing.assert_array_equal(der.padding_mask, src.padding_mask)
        assert der.meta["StudyInstanceUID"] == src.meta["StudyInstanceUID"]
        assert der.meta["FrameOfReferenceUID"] == src.meta["FrameOfReferenceUID"]
        assert der.meta["SeriesInstanceUID"] == row["derived_series_uid"]
        assert der.meta["SeriesInstanceUID"] != src.meta["SeriesInstanceUID"]
        ds = pydicom.dcmread(der.slices[0].path)
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert "drle" in ds.SeriesDescription and "drle" in ds.DerivationDescription
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in {
            s.sop_instance_uid for s in src.slices
        }
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        out_dicom = Path(row["output_path"])
        assert {p.suffix for p in out_dicom.iterdir()} == {".dcm"}  # DICOM files only
        record = out.resolve() / "series" / out_dicom.relative_to(out.resolve() / "dicom")
        assert (record / MARKER).is_file()
    # OUT/dicom holds DICOM files and nothing else (a DICOM tool can send it as it is)
    in_dicom = [p for p in (out / "dicom").rglob("*") if p.is_file()]
    assert in_dicom and all(pydicom.dcmread(p).SOPClassUID for p in in_dicom)
    # rerun: everything already done is skipped (verified), UIDs unchanged, nothing duplicated
    res2 = run_cli("denoise", cohort, "--out", out, "--model", ckpt, *SET)
    assert res2.exit_code == 0
    rows2 = json.loads((out / "manifest.json").read_text())["rows"]
    assert sorted(r["status"] for r in rows2) == ["skipped"] * 3
    assert _series_dirs(out) == dirs
    assert {r["derived_series_uid"] for r in rows2} == {r["derived_series_uid"] for r in rows}


def test_output_inside_input_refused(cohort: Path, run_cli: Callable, tmp_path: Path) -> None:
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    res = run_cli("denoise", cohort, "--out", cohort / "p1" / "den", "--model", ckpt)
    assert res.exit_code == 2
    assert "inside input folder" in res.stderr
    assert not (cohort / "p1" / "den").exists()


def test_dry_run_shows_rules_and_writes_nothing(
    cohort: Path, run_cli: Callable, tmp_path: Path
) -> None:
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    out = tmp_path / "out"
    res = run_cli("denoise", cohort, "--out", out, "--model", ckpt, "--dry-run")
    assert res.exit_code == 0
    assert "Rules:" in res.stdout and "min_slices" in res.stdout
    assert res.stdout.count("DENOISE") == 2 and "matches exclude rule 'scout'" in res.stdout
    assert not out.exists()
    # the rules are overridable
    res = run_cli(
        "denoise", cohort, "--out", out, "--model", ckpt, "--dry-run",
        "--set", "selection.exclude_descriptions=[]", "--set", "selection.min_slices=2",
    )  # fmt: skip
    assert res.stdout.count("DENOISE") == 1 and "< min_slices 2" in res.stdout


def test_corrupt_and_compressed_series(tmp_path: Path, run_cli: Callable) -> None:
    root = tmp_path / "in"
    good = write_series(root / "rle", n_slices=3, seed=4, description="RLE")
    compress_rle(good)
    bad = write_series(root / "bad", n_slices=5, seed=5, description="BROKEN")
    truncate(bad[2])
    out = tmp_path / "out"
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    res = run_cli("denoise", root, "--out", out, "--model", ckpt, *SET)
    assert res.exit_code == 1  # PARTIAL_FAILURE
    rows = {
        r["series_description"]: r for r in json.loads((out / "manifest.json").read_text())["rows"]
    }
    assert rows["RLE"]["status"] == "ok"
    assert rows["BROKEN"]["status"] == "failed"
    # accounted for at scan: the truncated file is named, not only the gap it leaves
    assert f"{bad[2].name} skipped at scan (no pixel data" in rows["BROKEN"]["reason"]
    assert "FAILED" in res.stdout
    src, der = read_volume(root / "rle"), read_volume(rows["RLE"]["output_path"])
    np.testing.assert_array_equal(der.hu, src.hu)
    assert not list((out / STAGING_DIR).glob("*")) if (out / STAGING_DIR).exists() else True


def test_nothing_readable_exits_3(tmp_path: Path, run_cli: Callable) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "junk.dcm").write_bytes(b"not dicom at all")
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    res = run_cli("denoise", root, "--out", tmp_path / "out", "--model", ckpt)
    assert res.exit_code == 3
    assert "no CT series found" in res.stderr


def test_nifti_geometry_matches_dicom(tmp_path: Path, run_cli: Callable) -> None:
    root = tmp_path / "in"
    write_series(root / "s", n_slices=4, rows=30, cols=26, seed=6, padding=True)
    out = tmp_path / "out"
    ckpt = smoothing_checkpoint(tmp_path / "sm.pt")
    res = run_cli("denoise", root, "--out", out, "--model", ckpt, "--format", "both", *SET)
    assert res.exit_code == 0, res.stderr
    (row,) = json.loads((out / "manifest.json").read_text())["rows"]
    nii = sitk.ReadImage(row["nifti_path"])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(row["output_path"]))
    dcm = reader.Execute()
    assert nii.GetSize() == dcm.GetSize()
    np.testing.assert_allclose(nii.GetSpacing(), dcm.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(nii.GetOrigin(), dcm.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(nii.GetDirection(), dcm.GetDirection(), atol=1e-6)
    a, b = sitk.GetArrayFromImage(nii), sitk.GetArrayFromImage(dcm).astype(np.float32)
    assert np.abs(a - b).max() <= 0.5 + 1e-3  # DICOM rounds HU to stored integers
    src = read_volume(root / "s")
    assert np.abs(a - src.hu)[~src.padding_mask].max() > 0.5  # this model changes the image


def test_shards_are_disjoint_and_merge(tmp_path: Path, run_cli: Callable) -> None:
    root = tmp_path / "in"
    for i in range(5):
        write_series(root / f"s{i}", n_slices=1, rows=20, cols=20, seed=10 + i, description=f"S{i}")
    out = tmp_path / "out"
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    done: list[str] = []
    for i in range(2):
        res = run_cli("denoise", root, "--out", out, "--model", ckpt, "--shard", f"{i}/2", *SET)
        assert res.exit_code == 0, res.stderr
        part = json.loads((out / "manifest.parts" / f"part-{i}-of-2.json").read_text())
        done += [r["series_key"] for r in part["rows"]]
    assert len(done) == len(set(done)) == 5  # disjoint and complete
    res = run_cli("denoise-merge", out)
    assert res.exit_code == 0
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    assert len(rows) == 5 and {r["status"] for r in rows} == {"ok"}
    assert (out / "manifest.csv").read_text().count("\n") == 6


def test_no_model_uses_bundled_and_says_so(
    cohort: Path, tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.models.bundled as bundled

    ckpt = identity_checkpoint(tmp_path / "bundled.pt")
    monkeypatch.setattr(bundled, "bundled_model_path", lambda verify=True: ckpt)
    res = run_cli("denoise", cohort, "--out", tmp_path / "out", "--dry-run")
    assert res.exit_code == 0
    assert "No --model given: using the bundled demo model" in res.stdout
    assert str(ckpt) in res.stdout
