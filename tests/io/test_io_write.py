"""The DICOM writer: read back with pydicom / SimpleITK / our reader, validate with dciodvfy,
dcmdump and dcm2niix (independent clients)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from pipeline.io.read import read_volume
from pipeline.io.write import hu_to_stored, write_derived_series, write_new_series

# rotated in-plane (30 deg about z), like an oblique reconstruction
_C, _S = np.cos(np.pi / 6), np.sin(np.pi / 6)
DIRECTION = np.array([[_C, -_S, 0.0], [_S, _C, 0.0], [0.0, 0.0, 1.0]])
SPACING = (2.5, 0.8, 0.8)
ORIGIN = (-50.0, -40.0, 120.0)


def _hu(shape: tuple[int, int, int] = (4, 40, 48)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(0.0, 300.0, shape).astype(np.float32)


@pytest.fixture
def original(tmp_path: Path):
    hu = _hu()
    mask = np.zeros(hu.shape, dtype=bool)
    mask[:, :3, :] = True
    hu[mask] = -1000.0
    written = write_new_series(
        hu, SPACING, ORIGIN, DIRECTION, tmp_path / "orig",
        patient_id="P01", patient_name="Test^Writer", series_description="orig",
        padding_mask=mask,
    )  # fmt: skip
    return hu, mask, written


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


def _dciodvfy_errors(path: Path) -> list[str]:
    res = subprocess.run([_tool("dciodvfy"), str(path)], capture_output=True, text=True)
    return [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]


def test_new_series_reads_back_with_pydicom_and_simpleitk(original) -> None:
    hu, mask, written = original
    assert len(written.paths) == 4 and written.n_clipped == 0
    ds = pydicom.dcmread(written.paths[1])
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == CTImageStorage == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.InstanceNumber == 2 and ds.Modality == "CT"
    assert ds.PixelPaddingValue == -2000 and ds["PixelPaddingValue"].VR == "SS"
    assert int(ds.pixel_array[0, 0]) == -2000  # padding stored as the padding value
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in written.paths])
    img = reader.Execute()
    assert np.allclose(img.GetSpacing(), (SPACING[2], SPACING[1], SPACING[0]))
    assert np.allclose(img.GetOrigin(), ORIGIN, atol=1e-4)
    assert np.allclose(np.array(img.GetDirection()).reshape(3, 3), DIRECTION, atol=1e-6)
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    assert np.abs(arr[~mask] - hu[~mask]).max() <= 0.5  # quantisation of rounding only


def test_uids_are_deterministic(tmp_path: Path) -> None:
    hu = _hu((2, 16, 16))
    kw = dict(patient_id="P", patient_name="A^B", series_description="s")
    a = write_new_series(hu, SPACING, ORIGIN, np.eye(3), tmp_path / "a", uid_key="k", **kw)
    b = write_new_series(hu, SPACING, ORIGIN, np.eye(3), tmp_path / "b", uid_key="k", **kw)
    c = write_new_series(hu, SPACING, ORIGIN, np.eye(3), tmp_path / "c", uid_key="j", **kw)
    assert a.series_instance_uid == b.series_instance_uid != c.series_instance_uid
    assert a.sop_instance_uids == b.sop_instance_uids
    assert a.series_instance_uid.startswith("2.25.") and len(a.series_instance_uid) <= 64


def test_twelve_bit_storage_clips_and_counts(tmp_path: Path) -> None:
    hu = np.zeros((1, 8, 8), dtype=np.float32)
    hu[0, 0, :3] = -3000.0
    hu[0, 1, :2] = 5000.0
    w = write_new_series(
        hu, SPACING, ORIGIN, np.eye(3), tmp_path / "o", patient_id="P", patient_name="A^B",
        series_description="s", bits_stored=12,
    )  # fmt: skip
    assert w.n_clipped == 5
    ds = pydicom.dcmread(w.paths[0])
    assert ds.BitsStored == 12 and ds.PixelRepresentation == 0
    assert ds.pixel_array.min() == 0 and ds.pixel_array.max() == 4095
    stored, n = hu_to_stored(np.array([-1024.4, 0.6]), 1.0, -1024.0, 12, 0)
    assert list(stored) == [0, 1025] and n == 0


def test_derived_series_keeps_study_and_references_sources(original, tmp_path: Path) -> None:
    _, mask, written = original
    src = read_volume(written.out_dir)
    new_hu = src.hu + 10.0
    d = write_derived_series(
        src, new_hu, tmp_path / "derived", series_description="orig [denoised]",
        derivation_description="Denoised by test model v1 (weights sha256 abc)", uid_key="m1",
    )  # fmt: skip
    ds = pydicom.dcmread(d.paths[0])
    srcds = pydicom.dcmread(written.paths[0])
    assert ds.StudyInstanceUID == srcds.StudyInstanceUID
    assert ds.FrameOfReferenceUID == srcds.FrameOfReferenceUID
    assert ds.SeriesInstanceUID != srcds.SeriesInstanceUID
    assert ds.SOPInstanceUID != srcds.SOPInstanceUID
    assert ds.SeriesNumber != srcds.SeriesNumber
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
    assert ds.DerivationDescription.startswith("Denoised by test model")
    ref = ds.SourceImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == srcds.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == CTImageStorage
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.PatientID == "P01" and ds.ImageOrientationPatient == srcds.ImageOrientationPatient
    back = read_volume(d.out_dir)
    assert np.abs(back.hu[~mask] - new_hu[~mask]).max() <= 0.5
    assert back.padding_mask is not None and np.array_equal(back.padding_mask, mask)
    again = write_derived_series(
        src, new_hu, tmp_path / "again", series_description="x", derivation_description="y",
        uid_key="m1",
    )  # fmt: skip
    assert again.series_instance_uid == d.series_instance_uid  # rerun: same UIDs
    with pytest.raises(ValueError, match="derived HU shape"):
        write_derived_series(
            src, new_hu[:2], tmp_path / "bad", series_description="x",
            derivation_description="y", uid_key="m1",
        )  # fmt: skip


def test_derived_series_from_real_ct_with_clipping(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    src_path = Path(get_testdata_file("CT_small.dcm", download=False))
    src = read_volume(src_path)
    bits = int(src.meta["BitsStored"])
    hu = src.hu.copy()
    hu[0, 0, :4] = 1e6  # far outside any 16-bit range
    d = write_derived_series(
        src, hu, tmp_path / "d", series_description="t", derivation_description="t", uid_key="k"
    )
    assert d.n_clipped == 4
    ds = pydicom.dcmread(d.paths[0])
    srcds = pydicom.dcmread(src_path)
    assert ds.BitsStored == bits and ds.RescaleIntercept == srcds.RescaleIntercept
    back = read_volume(d.out_dir)
    assert np.abs(back.hu[0, 1:] - src.hu[0, 1:]).max() <= 0.5 * float(srcds.RescaleSlope) + 1e-3


@pytest.mark.tools
def test_dciodvfy_accepts_new_and_derived_series(original, tmp_path: Path) -> None:
    _, _, written = original
    assert _dciodvfy_errors(written.paths[0]) == []
    src = read_volume(written.out_dir)
    d = write_derived_series(
        src, src.hu, tmp_path / "d", series_description="d", derivation_description="d",
        uid_key="k",
    )  # fmt: skip
    assert _dciodvfy_errors(d.paths[0]) == []


@pytest.mark.tools
def test_dcmdump_reads_the_files(original) -> None:
    _, _, written = original
    res = subprocess.run(
        [_tool("dcmdump"), "-M", str(written.paths[0])], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "Little Endian Explicit" in res.stdout
    assert "(0028,0120) SS -2000" in res.stdout  # PixelPaddingValue with its VR
    assert "W:" not in res.stderr and "E:" not in res.stderr


@pytest.mark.tools
def test_dcm2niix_converts_with_right_dimensions(original, tmp_path: Path) -> None:
    _, _, written = original
    out = tmp_path / "nii"
    out.mkdir()
    res = subprocess.run(
        [_tool("dcm2niix"), "-z", "n", "-o", str(out), "-f", "vol", str(written.out_dir)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    img = sitk.ReadImage(str(out / "vol.nii"))
    assert img.GetSize() == (48, 40, 4)
    assert np.allclose(img.GetSpacing(), (0.8, 0.8, 2.5), atol=1e-4)
