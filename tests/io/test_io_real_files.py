"""Real files from pydicom and pydicom-data: every decoder plugin, Enhanced CT, SimpleITK oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from pipeline.io.read import read_volume


def _data_file(name: str) -> Path:
    found = get_testdata_file(name, download=False)
    if not found:
        pytest.skip(f"{name} needs pydicom-data (dev extra)")
    return Path(found)


def _against_sitk_by_position(path: Path) -> None:
    """Compare HU slice by slice, matched by world position (readers may stack in either order)."""
    vol = read_volume(path)
    img = sitk.ReadImage(str(path))
    ref = sitk.GetArrayFromImage(img).astype(np.float32)
    assert ref.shape == vol.hu.shape
    for k, s in enumerate(vol.slices):
        kk = img.TransformPhysicalPointToIndex(s.position_mm)[2]
        keep = ~vol.padding_mask[k]
        np.testing.assert_array_equal(vol.hu[k][keep], ref[kk][keep])


@pytest.mark.parametrize(
    "name",
    [
        "693_UNCI.dcm",  # uncompressed 512x512 CT
        "693_J2KR.dcm",  # JPEG 2000 lossless
        "bad_sequence.dcm",  # JPEG Lossless SV1 (the common archive syntax)
        "explicit_VR-UN.dcm",  # JPEG 2000, explicit VR UN elements
        "eCT_Supplemental.dcm",  # Enhanced CT, 2 frames, rescale in functional groups
    ],
)
def test_pydicom_data_ct_against_simpleitk(name: str) -> None:
    _against_sitk_by_position(_data_file(name))


def test_enhanced_ct_real_file() -> None:
    vol = read_volume(_data_file("eCT_Supplemental.dcm"))
    assert vol.shape == (2, 512, 512)
    assert vol.meta["RescaleSources"] == ["functional-group"]
    assert sorted(s.frame for s in vol.slices) == [0, 1]  # type: ignore[type-var]
    # positions advance along the slice normal (row x column cosines)
    normal = vol.direction[:, 2]
    d = [float(np.dot(s.position_mm, normal)) for s in vol.slices]
    assert d[1] - d[0] == pytest.approx(vol.spacing_mm[0])


MR_VARIANTS = [
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
]


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_every_decoder_via_retagged_twins(tmp_path: Path, name: str) -> None:
    """pydicom ships one image in many transfer syntaxes; relabelled as CT, each must give the
    uncompressed twin's values (pydicom's decoding of MR_small.dcm is the oracle)."""
    oracle = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False)).pixel_array
    ds = pydicom.dcmread(get_testdata_file(name, download=False))
    ds.Modality = "CT"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    # MR_small has no rescale and no value near air: as CT it needs the usual intercept, or the
    # plausibility check refuses it (no air anywhere); MR signal 0 becomes -1024 HU
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    out = tmp_path / "ct.dcm"
    ds.save_as(out)
    vol = read_volume(out)
    np.testing.assert_array_equal(vol.hu[0], oracle.astype(np.float32) - 1024)
    assert vol.meta["RescaleSources"] == ["rescale"]
