"""Every real CT file of pydicom and pydicom-data through ``ldct denoise``, checked by independent
clients: dciodvfy finds no error the source lacks, dcm2niix makes one volume at the input's
geometry, pydicom and SimpleITK (GDCM) read the same geometry as the input, and a real Orthanc,
fed by ``storescu +sd +r OUT/dicom``, stores exactly as many instances as the input has frames.

Cases: classic uncompressed (``CT_small``, ``693_UNCR``, ``693_UNCI`` once lossy), Enhanced CT
(``eCT_Supplemental``, 2 frames), JPEG Lossless (``bad_sequence``, invalid UIDs too), JPEG 2000
lossless (``693_J2KR``, ``explicit_VR-UN``, ``J2K_pixelrep_mismatch``), JPEG 2000 lossy
(``693_J2KI``, 338:1), a multi-slice real series (``dicomdirtests`` CT5N), two lossless output
transfer syntaxes. One denoise run per case (several files share UIDs), a small DRL-E model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from infer_helpers import corner_positions, dciodvfy_errors, smoothing_checkpoint
from pydicom.data import get_testdata_file

from pipeline.io.read import read_volume


def _dcmtk_storescu() -> str | None:
    """DCMTK's ``storescu``; pynetdicom puts a same-named script (other options) in the venv."""
    venv_bin = (Path(sys.prefix) / "bin").resolve()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("storescu", path=folder) if folder else None
        if found and Path(found).parent.resolve() != venv_bin:
            return found
    return None


STORESCU = _dcmtk_storescu()

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(
        not (all(shutil.which(t) for t in ("dciodvfy", "dcm2niix")) and STORESCU),
        reason="needs dciodvfy (dicom3tools), dcm2niix and storescu (dcmtk)",
    ),
]


@dataclass(frozen=True)
class Case:
    name: str
    files: tuple[str, ...]  # pydicom / pydicom-data names, or a dicomdirtests folder
    syntax: str = "uncompressed"


CASES = [
    Case("CT_small", ("CT_small.dcm",)),
    Case("693_UNCR", ("693_UNCR.dcm",)),
    Case("693_UNCI", ("693_UNCI.dcm",)),
    Case("693_J2KR", ("693_J2KR.dcm",)),
    Case("693_J2KI", ("693_J2KI.dcm",)),
    Case("eCT", ("eCT_Supplemental.dcm",)),
    Case("bad_sequence", ("bad_sequence.dcm",)),
    Case("explicit_VR-UN", ("explicit_VR-UN.dcm",)),
    Case("J2K_pixelrep_mismatch", ("J2K_pixelrep_mismatch.dcm",)),
    Case("CT5N", ("dicomdirtests/98892001/CT5N",)),
    Case("eCT-jpeg-ls", ("eCT_Supplemental.dcm",), "jpeg-ls"),
    Case("693_UNCR-jpeg2000", ("693_UNCR.dcm",), "jpeg2000"),
]


def _source(name: str) -> Path | None:
    if name.startswith("dicomdirtests/"):
        base = Path(str(get_testdata_file("CT_small.dcm", download=False))).parent
        return base / name
    found = get_testdata_file(name, download=False)
    return Path(found) if found else None


@dataclass
class Run:
    case: Case
    inputs: Path
    out: Path
    row: dict


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    from pipeline.cli.main import main

    tmp = tmp_path_factory.mktemp("matrix")
    ckpt = smoothing_checkpoint(tmp / "sm.pt")
    done: dict[str, Run] = {}
    for case in CASES:
        srcs = [_source(n) for n in case.files]
        if any(s is None for s in srcs):
            continue  # pydicom-data not installed
        inputs = tmp / "in" / case.name
        inputs.mkdir(parents=True)
        for s in srcs:
            assert s is not None
            if s.is_dir():
                for f in s.iterdir():
                    shutil.copy(f, inputs / f.name)
            else:
                shutil.copy(s, inputs / s.name)
        out = tmp / "out" / case.name
        args = ["denoise", str(inputs), "--out", str(out), "--model", str(ckpt)]
        code = main([*args, "--set", f"output.transfer_syntax={case.syntax}"])
        (row,) = json.loads((out / "manifest.json").read_text())["rows"]
        assert code == 0, (case.name, row["reason"])
        done[case.name] = Run(case, inputs, out, row)
    return done


def _run(runs: dict[str, Run], name: str) -> Run:
    if name not in runs:
        pytest.skip(f"{name} needs pydicom-data (dev extra)")
    return runs[name]


def _frames(inputs: Path) -> int:
    return sum(int(pydicom.dcmread(f, stop_before_pixels=True).get("NumberOfFrames") or 1)
               for f in inputs.iterdir())  # fmt: skip


def _outputs(run: Run) -> list[Path]:
    return sorted(Path(run.row["output_path"]).glob("*.dcm"))


NAMES = [c.name for c in CASES]


@pytest.mark.parametrize("name", NAMES)
def test_one_output_instance_per_input_frame_with_unique_uids(runs, name: str) -> None:
    run = _run(runs, name)
    files = _outputs(run)
    assert len(files) == _frames(run.inputs) == run.row["n_slices"]
    dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert len({d.SOPInstanceUID for d in dss}) == len(dss)
    assert {d.file_meta.TransferSyntaxUID for d in dss} == {
        {"uncompressed": pydicom.uid.ExplicitVRLittleEndian,
         "jpeg-ls": pydicom.uid.JPEGLSLossless,
         "jpeg2000": pydicom.uid.JPEG2000Lossless}[run.case.syntax]
    }  # fmt: skip
    # OUT/dicom holds nothing but these DICOM files
    assert sorted(p for p in (run.out / "dicom").rglob("*") if p.is_file()) == files


@pytest.mark.parametrize("name", NAMES)
def test_dciodvfy_adds_no_error_the_source_lacks(runs, name: str) -> None:
    run = _run(runs, name)
    source_errors: set[str] = set()
    for f in run.inputs.iterdir():
        source_errors |= dciodvfy_errors(f)
    for f in _outputs(run):
        new = dciodvfy_errors(f) - source_errors
        assert not new, f"{name}/{f.name}: {sorted(new)}"


def _dcm2niix(folder: Path, dest: Path) -> sitk.Image:
    dest.mkdir()
    res = subprocess.run(
        ["dcm2niix", "-z", "n", "-b", "n", "-o", str(dest), "-f", "vol", str(folder)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    niftis = sorted(dest.glob("*.nii"))
    assert len(niftis) == 1, res.stdout
    return sitk.ReadImage(str(niftis[0]))


@pytest.mark.parametrize("name", NAMES)
def test_dcm2niix_pydicom_and_simpleitk_agree_with_the_input_geometry(
    runs, name: str, tmp_path: Path
) -> None:
    run = _run(runs, name)
    src = read_volume(run.inputs).to_sitk()
    if run.case.syntax != "jpeg-ls":  # Debian's dcm2niix is built without JPEG-LS (CharLS)
        # dcm2niix makes one volume of the output, where it puts the input (gantry tilt too)
        converted = _dcm2niix(Path(run.row["output_path"]), tmp_path / "out")
        reference = _dcm2niix(run.inputs, tmp_path / "in")
        assert converted.GetSize() == reference.GetSize()
        np.testing.assert_allclose(
            corner_positions(converted), corner_positions(reference), atol=0.05
        )
        assert sorted(converted.GetSize()) == sorted(src.GetSize())
    # SimpleITK (GDCM series reader) and pydicom's headers give the input geometry
    if len(_outputs(run)) > 1:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(run.row["output_path"]))
        img = reader.Execute()
        np.testing.assert_allclose(corner_positions(img), corner_positions(src), atol=0.05)
        np.testing.assert_allclose(img.GetSpacing(), src.GetSpacing(), rtol=1e-4)
    dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in _outputs(run)]
    positions = sorted(tuple(float(v) for v in d.ImagePositionPatient) for d in dss)
    src_positions = sorted(
        src.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(src.GetSize()[2])
    )
    np.testing.assert_allclose(positions, src_positions, atol=0.01)
    for d in dss:
        np.testing.assert_allclose(
            [float(v) for v in d.PixelSpacing], src.GetSpacing()[1::-1], rtol=1e-5
        )
        np.testing.assert_allclose(
            [float(v) for v in d.ImageOrientationPatient],
            [*np.asarray(src.GetDirection()).reshape(3, 3)[:, 0],
             *np.asarray(src.GetDirection()).reshape(3, 3)[:, 1]],
            atol=1e-4,  # headers give 4-6 decimals; SimpleITK orthonormalises
        )  # fmt: skip


#: storescu's option to propose each output transfer syntax (it converts to uncompressed
#: otherwise, which it cannot do for compressed data)
STORESCU_PROPOSE = {"uncompressed": [], "jpeg-ls": ["-xt"], "jpeg2000": ["-xv"], "rle": ["-xr"]}


def test_orthanc_stores_every_instance_sent_by_storescu(runs, orthanc) -> None:
    """``storescu +sd +r OUT/dicom`` for every case; Orthanc keeps one instance per input frame."""
    if not runs:
        pytest.skip("no real files available")
    orthanc.add_modality("LDCTTEST", "LDCTTEST", 11112)
    for run in runs.values():
        res = subprocess.run(
            [str(STORESCU), "-aet", "LDCTTEST", "-aec", orthanc.aet, "+sd", "+r",
             *STORESCU_PROPOSE[run.case.syntax],
             "127.0.0.1", str(orthanc.dicom_port), str(run.out / "dicom")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, (run.case.name, res.stdout + res.stderr)
    sent: set[str] = set()
    for run in runs.values():
        uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                for f in _outputs(run)}  # fmt: skip
        found = orthanc.post(
            "/tools/find",
            {
                "Level": "Instance",
                "Query": {"SeriesInstanceUID": run.row["derived_series_uid"]},
                "Expand": True,
            },
        )
        stored = {i["MainDicomTags"]["SOPInstanceUID"] for i in found}
        # the 693_* files are one image in four encodings with the same source UIDs, so their
        # derived series coincide: count this run's own instances
        assert len(stored & uids) == len(uids) == _frames(run.inputs), run.case.name
        sent |= uids
    assert orthanc.instance_count() == len(sent)  # nothing lost, nothing extra
