"""read_series/read_volume: HU for every vendor variant, against the factory's known HU and
against SimpleITK (GDCM) as an independent reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from io_dicom_factory import make_enhanced, make_series
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from pipeline.errors import DicomError
from pipeline.io.discover import scan
from pipeline.io.read import read_series, read_volume
from pipeline.utils.files import sha256_file

VARIANTS = {
    "signed16": {},
    "unsigned16": {"pixel_representation": 0},
    "unsigned12_junk_high_bits": {
        "bits_stored": 12, "pixel_representation": 0, "junk_high_bits": True,
    },
    "signed12_intercept0": {"bits_stored": 12, "intercept": 0.0},
    "signed12_junk_high_bits": {"bits_stored": 12, "intercept": 0.0, "junk_high_bits": True},
    "slope_half": {"slope": 0.5},
    "slope_2_intercept_minus1000": {"slope": 2.0, "intercept": -1000.0},
    "monochrome1": {"photometric": "MONOCHROME1"},
    "implicit_vr": {"transfer_syntax": "1.2.840.10008.1.2"},
    "per_slice_intercept": {"per_slice_intercept": [-1024.0, 0.0, -1000.0, -1024.0]},
    "deflated": {"transfer_syntax": DeflatedExplicitVRLittleEndian},
    "rle": {"transfer_syntax": RLELossless},
    "rle_unsigned_padded": {
        "transfer_syntax": RLELossless, "pixel_representation": 0, "padding_stored": 0,
    },
    "j2k_lossless": {"transfer_syntax": JPEG2000Lossless, "rows": 64, "cols": 64},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_hu_matches_factory(tmp_path: Path, name: str) -> None:
    spec = make_series(tmp_path, **VARIANTS[name])  # type: ignore[arg-type]
    vol = read_volume(tmp_path)
    np.testing.assert_array_equal(vol.hu, spec.hu.astype(np.float32))
    assert vol.hu.dtype == np.float32
    np.testing.assert_array_equal(vol.padding_mask, spec.padding)


def test_monochrome1_is_not_inverted(tmp_path: Path) -> None:
    a = make_series(tmp_path / "m2", seed=1)
    b = make_series(tmp_path / "m1", seed=1, photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_volume(tmp_path / "m1").hu, read_volume(tmp_path / "m2").hu)
    assert np.array_equal(a.hu, b.hu)


@pytest.mark.parametrize("tagged", [True, False])
@pytest.mark.parametrize("pad", [-2000, -3024 + 1024])
def test_padding_to_air_with_mask(tmp_path: Path, tagged: bool, pad: int) -> None:
    spec = make_series(tmp_path, padding_stored=pad, tag_padding=tagged)
    vol = read_volume(tmp_path)
    assert spec.padding.any()
    np.testing.assert_array_equal(vol.padding_mask, spec.padding)
    assert np.all(vol.hu[spec.padding] == -1000.0)
    assert vol.meta["PixelPaddingValue"] == (pad if tagged else None)


def test_padding_tagged_inside_hu_range_is_masked(tmp_path: Path) -> None:
    # unsigned data padded with stored 0 (= -1024 HU): only the tag can tell it from air
    spec = make_series(tmp_path, pixel_representation=0, padding_stored=0)
    vol = read_volume(tmp_path)
    np.testing.assert_array_equal(vol.padding_mask, spec.padding)


def test_enhanced_ct_uses_per_frame_rescale(tmp_path: Path) -> None:
    spec = make_enhanced(tmp_path / "e" / "enh.dcm")
    vol = read_volume(tmp_path / "e")
    np.testing.assert_array_equal(vol.hu, spec.hu.astype(np.float32))
    assert vol.meta["RescaleSources"] == ["functional-group"]
    assert [s.frame for s in vol.slices] == [2, 1, 0]  # stored top-down, sorted bottom-up
    assert [s.rescale_slope for s in vol.slices] == [1.0, 2.0, 0.5]


def test_enhanced_ct_shared_rescale(tmp_path: Path) -> None:
    spec = make_enhanced(tmp_path / "e" / "enh.dcm", shared_rescale=True)
    np.testing.assert_array_equal(read_volume(tmp_path / "e").hu, spec.hu.astype(np.float32))


def test_missing_rescale_means_stored_is_hu(tmp_path: Path) -> None:
    spec = make_series(tmp_path, intercept=0.0, omit_rescale=True)
    vol = read_volume(tmp_path)
    np.testing.assert_array_equal(vol.hu, spec.hu.astype(np.float32))
    assert vol.meta["RescaleSources"] == ["none"]


def test_meta_and_slice_headers(tmp_path: Path) -> None:
    spec = make_series(tmp_path, padding_stored=-2000, description="abdomen 1mm", series_number=7)
    vol = read_volume(tmp_path)
    for key in ("PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID",
                "FrameOfReferenceUID", "SeriesDescription", "SeriesNumber", "BitsStored",
                "BitsAllocated", "PixelRepresentation", "PixelPaddingValue",
                "TransferSyntaxUID", "Rows", "Columns"):  # fmt: skip
        assert key in vol.meta, key
    assert vol.meta["SeriesInstanceUID"] == spec.series_uid
    assert vol.meta["StudyInstanceUID"] == spec.study_uid
    assert vol.meta["SeriesDescription"] == "abdomen 1mm"
    assert vol.meta["SeriesNumber"] == 7
    assert vol.meta["PixelPaddingValue"] == -2000
    for s in vol.slices:
        assert s.header is not None and "PixelData" not in s.header
        assert s.header.SOPInstanceUID == s.sop_instance_uid
        assert tuple(float(v) for v in s.header.ImagePositionPatient) == s.position_mm


def test_input_files_unchanged(tmp_path: Path) -> None:
    spec = make_series(tmp_path, transfer_syntax=RLELossless, padding_stored=-2000)
    before = {p: sha256_file(p) for p in spec.paths}
    mtimes = {p: p.stat().st_mtime_ns for p in spec.paths}
    read_volume(tmp_path)
    assert {p: sha256_file(p) for p in spec.paths} == before
    assert {p: p.stat().st_mtime_ns for p in spec.paths} == mtimes


def test_decode_in_process_equals_isolated(tmp_path: Path) -> None:
    make_series(tmp_path, transfer_syntax=RLELossless)
    rec = scan([tmp_path]).series[0]
    a = read_series(rec, workers=2)
    b = read_series(rec, isolate=False)
    np.testing.assert_array_equal(a.hu, b.hu)


def _sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"slope": 0.5, "intercept": -1024.0},
        {"pixel_representation": 0, "bits_stored": 12},
        {"orientation": (0.8660254, 0.5, 0.0, -0.5, 0.8660254, 0.0)},
        {"orientation": (1, 0, 0, 0, 0, -1)},  # coronal
        {"transfer_syntax": RLELossless},
    ],
)
def test_against_simpleitk(tmp_path: Path, kwargs: dict[str, object]) -> None:
    make_series(tmp_path, n_slices=5, **kwargs)  # type: ignore[arg-type]
    ours = read_volume(tmp_path)
    img = _sitk_series(tmp_path)
    np.testing.assert_allclose(ours.hu, sitk.GetArrayFromImage(img).astype(np.float32), atol=1e-3)
    np.testing.assert_allclose(ours.origin_mm, img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.direction.reshape(-1), img.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(ours.spacing_mm[::-1], img.GetSpacing(), atol=1e-4)
    back = ours.to_sitk()
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)


@pytest.mark.parametrize("name", ["CT_small.dcm", "J2K_pixelrep_mismatch.dcm", "693_J2KI.dcm"])
def test_shipped_files_against_simpleitk(name: str) -> None:
    path = Path(get_testdata_file(name, download=False))
    ours = read_volume(path)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
    assert ours.hu.shape == ref.shape
    keep = ~ours.padding_mask
    if name == "693_J2KI.dcm":  # lossy J2K: decoders may differ by rounding
        assert np.abs(ours.hu[keep] - ref[keep]).max() <= 2
    else:
        np.testing.assert_array_equal(ours.hu[keep], ref[keep])


def test_j2k_pixelrep_mismatch_is_sign_corrected() -> None:
    # PixelRepresentation 1 but the J2K codestream is unsigned: naive readers wrap around
    vol = read_volume(get_testdata_file("J2K_pixelrep_mismatch.dcm", download=False))
    tissue = vol.hu[~vol.padding_mask]
    assert tissue.min() >= -1100 and tissue.max() <= 3000


def test_ct_small_values() -> None:
    vol = read_volume(get_testdata_file("CT_small.dcm", download=False))
    # CT_small: stored 128..2191 with intercept -1024, no padding voxel present
    assert (vol.hu.min(), vol.hu.max()) == (-896.0, 1167.0)
    assert vol.spacing_mm[1:] == pytest.approx((0.661468, 0.661468))
    assert not vol.padding_mask.any()


def test_read_volume_requires_one_series(tmp_path: Path) -> None:
    make_series(tmp_path / "a", description="first")
    make_series(tmp_path / "b", description="second")
    with pytest.raises(DicomError, match="2 CT series found, expected exactly one"):
        read_volume(tmp_path)
    with pytest.raises(DicomError, match="no readable CT series"):
        read_volume(tmp_path / "nothing-here")
