"""Independent DICOM clients accept ``ldct denoise`` output: dciodvfy, dcmdump, dcm2niix."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from infer_helpers import (
    compress_rle,
    corner_positions,
    dciodvfy_errors,
    smoothing_checkpoint,
    write_series,
)
from pydicom.data import get_testdata_file

from pipeline.io.read import read_volume

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("dciodvfy", "dcmdump", "dcm2niix")),
        reason="needs dciodvfy (dicom3tools), dcmdump (dcmtk) and dcm2niix",
    ),
]


@pytest.fixture(scope="module")
def denoised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    from pipeline.cli.main import main

    tmp = tmp_path_factory.mktemp("tools")
    root = tmp / "in"
    write_series(root / "synthetic", n_slices=3, rows=40, cols=36, padding=True)
    compress_rle(write_series(root / "rle12", n_slices=2, seed=3, bits_stored=12))
    real = root / "pydicom"
    real.mkdir()
    for name in ("CT_small.dcm", "693_J2KI.dcm"):  # real CT headers; the second is lossy J2K
        shutil.copy(str(get_testdata_file(name, download=False)), real / name)
    files = Path(str(get_testdata_file("CT_small.dcm", download=False))).parent
    shutil.copytree(files / "dicomdirtests" / "98892001" / "CT5N", root / "ct5n")  # 5 real slices
    out = tmp / "out"
    ckpt = smoothing_checkpoint(tmp / "sm.pt")
    code = main(["denoise", str(root), "--out", str(out), "--model", str(ckpt)])
    assert code == 0
    rows = [r for r in json.loads((out / "manifest.json").read_text())["rows"] if r["output_path"]]
    assert len(rows) >= 4
    return root, out, rows


def _source_files(root: Path) -> dict[str, Path]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            try:
                out[str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)] = p
            except Exception:  # non-DICOM files in the fixture tree
                continue
    return out


def test_dciodvfy_adds_no_error(denoised: tuple[Path, Path, list[dict]]) -> None:
    root, _out, rows = denoised
    sources = _source_files(root)
    for row in rows:
        for f in sorted(Path(row["output_path"]).glob("*.dcm")):
            ref = pydicom.dcmread(f, stop_before_pixels=True).SourceImageSequence[0]
            src = sources[str(ref.ReferencedSOPInstanceUID)]
            new = dciodvfy_errors(f) - dciodvfy_errors(src)
            assert not new, f"{f} (from {src}): {sorted(new)}"


def test_dcmdump_reads_every_file(denoised: tuple[Path, Path, list[dict]]) -> None:
    _root, _out, rows = denoised
    files = [f for r in rows for f in sorted(Path(r["output_path"]).glob("*.dcm"))]
    res = subprocess.run(["dcmdump", "-q", *map(str, files)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("(0002,0010) UI =LittleEndianExplicit") == len(files)
    assert "E:" not in res.stderr


def test_dcm2niix_one_volume_with_input_geometry(
    denoised: tuple[Path, Path, list[dict]], tmp_path: Path
) -> None:
    _root, _out, rows = denoised
    for i, row in enumerate(rows):
        dest = tmp_path / f"n{i}"
        dest.mkdir()
        res = subprocess.run(
            ["dcm2niix", "-z", "n", "-b", "n", "-o", str(dest), "-f", "vol", row["output_path"]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        niftis = sorted(dest.glob("*.nii"))
        assert len(niftis) == 1, (row["input_path"], res.stdout)
        converted = sitk.ReadImage(str(niftis[0]))
        src = read_volume(row["input_path"]) if row["n_slices"] > 1 else None
        if src is None:  # single-file inputs share a folder: read the referenced file
            ds = pydicom.dcmread(next(Path(row["output_path"]).glob("*.dcm")))
            uid = str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)
            src_path = _source_files(Path(row["input_path"]))[uid]
            src = read_volume(src_path)
        ref = src.to_sitk()
        assert sorted(converted.GetSize()) == sorted(ref.GetSize())
        np.testing.assert_allclose(corner_positions(converted), corner_positions(ref), atol=0.05)


def test_uids_and_descriptions(denoised: tuple[Path, Path, list[dict]]) -> None:
    _root, _out, rows = denoised
    for row in rows:
        files = sorted(Path(row["output_path"]).glob("*.dcm"))
        dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        assert {str(d.SeriesInstanceUID) for d in dss} == {row["derived_series_uid"]}
        assert len({str(d.SOPInstanceUID) for d in dss}) == len(dss)
        assert all(re.fullmatch(r"[0-9.]{1,64}", str(d.SOPInstanceUID)) for d in dss)
        assert all(str(d.StudyInstanceUID) == row["study_uid"] for d in dss)
        assert all(d.DerivationDescription.startswith("Denoised by ldct-pipeline") for d in dss)
        assert all(row["model_sha256"] in d.DerivationDescription for d in dss)


def test_manifest_flags_suspect_sources(denoised: tuple[Path, Path, list[dict]]) -> None:
    _root, _out, rows = denoised
    by_desc = {r["series_description"]: r for r in rows}
    lossy = by_desc["5/5mm Plain"]  # 693_J2KI.dcm: JPEG 2000 lossy 338:1, no FrameOfReferenceUID
    assert lossy["source_lossy"] is True
    assert "ratio 338.7:1" in lossy["source_flags"]
    assert "FrameOfReferenceUID" in lossy["source_flags"]
    others = [r for r in rows if r is not lossy]  # synthetic, RLE, CT_small, CT5N: lossless
    assert others and all(r["source_lossy"] is False for r in others)
