"""Derived instances of real files: Enhanced CT frames become classic CT with their own UIDs and
complete headers; every derived instance follows the derived-image rules (dates, equipment,
private tags, CID 7203/7202 codes); simulated dose scales the dose attributes.

Oracles: pydicom's own copy of the DICOM code tables (``pydicom.sr.codedict``), the source
header as pydicom reads it, and dciodvfy (dicom3tools) for "no error the source lacks"."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from pipeline.io.derived_header import DerivedInfo, scale_dose, series_description
from pipeline.io.read import read_volume
from pipeline.io.write import write_derived_series


def _data_file(name: str) -> Path:
    found = get_testdata_file(name, download=False)
    if not found:
        pytest.skip(f"{name} needs pydicom-data (dev extra)")
    return Path(found)


def _derive(src: Path, out: Path, **kw: object) -> list[pydicom.Dataset]:
    vol = read_volume(src)
    written = write_derived_series(
        vol,
        vol.hu,
        out,
        series_description="D",
        derivation_description="test",
        uid_key="k",
        **kw,  # type: ignore[arg-type]
    )
    return [pydicom.dcmread(p) for p in written.paths]


def _dciodvfy_errors(path: Path) -> set[str]:
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return {ln.strip() for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")}


def test_enhanced_ct_frames_get_unique_deterministic_uids_and_complete_headers(
    tmp_path: Path,
) -> None:
    src_path = _data_file("eCT_Supplemental.dcm")
    src = pydicom.dcmread(src_path)
    out = _derive(src_path, tmp_path / "a")
    again = _derive(src_path, tmp_path / "b")
    uids = [ds.SOPInstanceUID for ds in out]
    assert len(set(uids)) == 2 == int(src.NumberOfFrames)
    assert uids == [ds.SOPInstanceUID for ds in again]  # a rerun duplicates nothing
    shared = src.SharedFunctionalGroupsSequence[0]
    voi = shared.FrameVOILUTSequence[0]
    for ds in out:
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert "NumberOfFrames" not in ds and "PerFrameFunctionalGroupsSequence" not in ds
        assert float(ds.WindowCenter) == float(voi.WindowCenter)
        assert float(ds.WindowWidth) == float(voi.WindowWidth)
        assert ds.PatientPosition == src.PatientPosition
        assert ds.AcquisitionNumber == src.AcquisitionNumber
        assert "KVP" in ds  # Type 2: present (empty, the source has no KVP)
        assert ds.ContrastBolusAgent == src.ContrastBolusAgentSequence[0].CodeMeaning
        assert float(ds.SliceThickness) == float(shared.PixelMeasuresSequence[0].SliceThickness)
        ref = ds.SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID
    # each output references its own frame, at that frame's position
    frames = {int(ds.SourceImageSequence[0].ReferencedFrameNumber): ds for ds in out}
    assert sorted(frames) == [1, 2]
    for number, ds in frames.items():
        item = src.PerFrameFunctionalGroupsSequence[number - 1]
        pos = item.PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], pos, atol=1e-3)


def test_derived_instance_rules_on_a_classic_source(tmp_path: Path) -> None:
    src_path = _data_file("CT_small.dcm")
    src = pydicom.dcmread(src_path)
    assert any(e.tag.is_private for e in src)  # GE group 0009 in the source
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    (ds,) = _derive(src_path, tmp_path / "o")
    assert not any(e.tag.is_private for e in ds)
    assert ds.Manufacturer == "ldct-pipeline" and ds.SoftwareVersions
    contrib = ds.ContributingEquipmentSequence[0]
    assert contrib.Manufacturer == src.Manufacturer
    assert contrib.PurposeOfReferenceCodeSequence[0].CodeValue == (
        codes.cid7005.AcquisitionEquipment.value
    )
    assert "InstanceCreatorUID" not in ds and "StationName" not in ds
    created = datetime.datetime.strptime(
        f"{ds.InstanceCreationDate}{ds.InstanceCreationTime}{ds.TimezoneOffsetFromUTC}",
        "%Y%m%d%H%M%S.%f%z",
    )
    assert created >= before  # not the source's 2004 dates
    assert (ds.ContentDate, ds.ContentTime) == (ds.InstanceCreationDate, ds.InstanceCreationTime)
    assert ds.StudyDate == src.StudyDate  # the study is the source's
    deriv = ds.DerivationCodeSequence[0]
    smoothing = codes.cid7203.Smoothing
    assert (deriv.CodeValue, deriv.CodingSchemeDesignator, deriv.CodeMeaning) == (
        smoothing.value,
        smoothing.scheme_designator,
        smoothing.meaning,
    )
    purpose = ds.SourceImageSequence[0].PurposeOfReferenceCodeSequence[0]
    assert purpose.CodeValue == codes.cid7202.SourceImageForImageProcessingOperation.value
    assert ds.XRayTubeCurrent == src.XRayTubeCurrent  # not a dose change


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
@pytest.mark.parametrize("name", ["eCT_Supplemental.dcm", "CT_small.dcm", "bad_sequence.dcm"])
def test_dciodvfy_finds_no_error_the_source_lacks(tmp_path: Path, name: str) -> None:
    src_path = _data_file(name)
    vol = read_volume(src_path)
    written = write_derived_series(
        vol, vol.hu, tmp_path, series_description="D", derivation_description="t", uid_key="k"
    )
    source_errors = _dciodvfy_errors(src_path)
    for path in written.paths:
        assert _dciodvfy_errors(path) - source_errors == set()


def test_simulated_dose_scales_the_dose_attributes(tmp_path: Path) -> None:
    src_path = _data_file("CT_small.dcm")
    src = pydicom.dcmread(src_path)
    info = DerivedInfo(model_name="ldct simulate", derivation_codes=(), dose_factor=0.25)
    (ds,) = _derive(src_path, tmp_path, derived=info)
    assert int(ds.XRayTubeCurrent) == round(int(src.XRayTubeCurrent) * 0.25)
    assert float(ds.XRayTubeCurrentInuA) == pytest.approx(int(src.XRayTubeCurrent) * 250.0)
    assert int(ds.ExposureInuAs) == round(int(src.Exposure) * 250)
    assert "DerivationCodeSequence" not in ds  # noise insertion has no CID 7203 code


def test_scale_dose_keeps_exact_values_and_ctdivol() -> None:
    ds = Dataset()
    ds.XRayTubeCurrentInuA = "300000"
    ds.ExposureInuAs = 150000
    ds.CTDIvol = 12.0
    scale_dose(ds, 0.1)
    assert float(ds.XRayTubeCurrentInuA) == pytest.approx(30000.0)
    assert ds.ExposureInuAs == 15000 and ds.CTDIvol == pytest.approx(1.2)
    assert "XRayTubeCurrent" not in ds  # only what is present is scaled


@pytest.mark.parametrize(
    ("desc", "meta", "expected"),
    [
        (None, {"SeriesNumber": 3, "Modality": "CT"}, "CT series 3 [x]"),
        ("", {}, "CT series [x]"),
        ("  Abdomen  ", {}, "Abdomen [x]"),
        ("A" * 80, {}, "A" * 60 + " [x]"),
    ],
)
def test_series_description_never_says_none(desc: object, meta: dict, expected: str) -> None:
    assert series_description(desc, meta, " [x]") == expected


def test_simulate_writer_records_the_dose_in_the_standard_attributes(tmp_path: Path) -> None:
    from pipeline.simulate.from_volume import LowDoseResult, write_low_dose_series

    src_path = _data_file("CT_small.dcm")
    src = pydicom.dcmread(src_path)
    vol = read_volume(src_path)
    info = {"i0_photons_per_bin": 1e5, "target_sd_hu": 12.0}
    written = write_low_dose_series(vol, LowDoseResult(vol.hu, 0.25, 0, info), tmp_path)
    ds = pydicom.dcmread(written.paths[0])
    assert int(ds.XRayTubeCurrent) == round(int(src.XRayTubeCurrent) * 0.25)
    assert int(ds.Exposure) == round(int(src.Exposure) * 0.25)
    assert int(ds.ExposureInuAs) == int(src.Exposure) * 250
    assert ds.ManufacturerModelName == "ldct simulate" and "DerivationCodeSequence" not in ds


def test_functional_groups_flatten_into_classic_attributes() -> None:
    """Per-frame groups override shared ones; Enhanced-only names map to their classic forms."""
    from pipeline.io.derived_header import classic_from_frame

    def item(**kw: object) -> Dataset:
        ds = Dataset()
        for k, v in kw.items():
            setattr(ds, k, v)
        return ds

    shared = item(
        CTAcquisitionDetailsSequence=[item(KVP=120, GantryDetectorTilt=0)],
        CTReconstructionSequence=[item(ConvolutionKernel="B30f", ReconstructionDiameter=350)],
        CTExposureSequence=[
            item(
                XRayTubeCurrentInmA=200.0, ExposureInmAs=100.0, ExposureTimeInms=500.0, CTDIvol=10.0
            )
        ],
    )
    frame = item(
        CTExposureSequence=[
            item(XRayTubeCurrentInmA=150.4, ExposureInmAs=75.2, ExposureTimeInms=500.0, CTDIvol=7.5)
        ],
        FrameContentSequence=[
            item(FrameAcquisitionDateTime="20240102030405.5+0100", FrameAcquisitionNumber=7)
        ],
        FrameAnatomySequence=[item(FrameLaterality="L")],
    )
    header = item(
        NumberOfFrames=2, PatientID="X", SharedFunctionalGroupsSequence=[shared],
        PerFrameFunctionalGroupsSequence=[item(), frame],
    )  # fmt: skip
    ds = classic_from_frame(header, 1)
    assert ds.PatientID == "X" and "NumberOfFrames" not in ds
    assert float(ds.KVP) == 120 and ds.ConvolutionKernel == "B30f"
    assert ds.XRayTubeCurrent == 150 and ds.Exposure == 75 and ds.ExposureInuAs == 75200
    assert ds.ExposureTime == 500 and ds.CTDIvol == pytest.approx(7.5)
    assert ds.AcquisitionNumber == 7 and ds.Laterality == "L"
    assert (ds.AcquisitionDate, ds.AcquisitionTime) == ("20240102", "030405.5")
    first = classic_from_frame(header, 0)  # only the shared group applies
    assert first.XRayTubeCurrent == 200 and "Laterality" not in first
