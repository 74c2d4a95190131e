"""Stored -> HU building blocks: bit masking/sign extension, padding values, modality LUT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_dicom_factory import make_series
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence

from pipeline.io.hu import (
    Rescale,
    hu_to_stored,
    padding_mask,
    padding_spec,
    rescale_for_frame,
    sign_extend,
    stored_range,
    stored_to_hu,
    stored_value_hu,
    unpack_native,
)
from pipeline.io.read import read_volume


@pytest.mark.parametrize("bits_stored", [12, 13, 15, 16])
@pytest.mark.parametrize("signed", [0, 1])
def test_unpack_native_matches_pydicom(tmp_path: Path, bits_stored: int, signed: int) -> None:
    spec = make_series(tmp_path, n_slices=1, bits_stored=bits_stored, pixel_representation=signed,
                       junk_high_bits=True, intercept=-1024.0 if not signed else 0.0)  # fmt: skip
    ds = pydicom.dcmread(spec.paths[0])
    raw = np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns)
    np.testing.assert_array_equal(unpack_native(raw, bits_stored, signed), ds.pixel_array)


def test_sign_extend_examples() -> None:
    vals = np.array([0x0FFF, 0x0800, 0x07FF, 0xF000 | 0x0FFF], dtype=np.int64)
    assert sign_extend(vals, 12).tolist() == [-1, -2048, 2047, -1]


def _ds(**tags: object) -> Dataset:
    ds = Dataset()
    ds.BitsAllocated, ds.BitsStored = 16, 16
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds


def test_padding_value_us_ss_ambiguity() -> None:
    # PixelPaddingValue written as US 63536 in a signed image means -2000
    assert padding_spec(_ds(PixelRepresentation=1, PixelPaddingValue=63536)) == (-2000, -2000)
    assert padding_spec(_ds(PixelRepresentation=1, PixelPaddingValue=-2000)) == (-2000, -2000)
    assert padding_spec(_ds(PixelRepresentation=0, PixelPaddingValue=0)) == (0, 0)
    assert padding_spec(_ds(PixelRepresentation=0)) is None
    ranged = _ds(PixelRepresentation=1, PixelPaddingValue=-2000, PixelPaddingRangeLimit=-1500)
    assert padding_spec(ranged) == (-2000, -1500)


def test_padding_mask_threshold_and_range() -> None:
    stored = np.array([-2000, -1800, -477, -476, 0, 1000], dtype=np.int16)
    rescale = Rescale(1.0, -1024.0)
    hu = stored_to_hu(stored, rescale)
    # HU < -1500 is padding whatever the tag says
    expected = hu < -1500
    np.testing.assert_array_equal(padding_mask(stored, rescale, None), expected)
    # a tagged range inside the HU range adds to it
    got = padding_mask(stored, rescale, (0, 0))
    np.testing.assert_array_equal(got, expected | (stored == 0))
    # negative slope flips the inequality
    neg = Rescale(-1.0, 0.0)
    np.testing.assert_array_equal(
        padding_mask(stored, neg, None), stored_to_hu(stored, neg) < -1500
    )


def test_modality_lut_sequence_matches_pydicom() -> None:
    ds = Dataset()
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 12, 0
    item = Dataset()
    item.LUTDescriptor = [4, 100, 16]
    item.LUTData = [0, 10, 20, 30]
    item.ModalityLUTType = "HU"
    ds.ModalityLUTSequence = Sequence([item])
    rescale = rescale_for_frame(ds, [])
    assert rescale.source == "modality-lut"
    stored = np.array([90, 100, 101, 102, 103, 200], dtype=np.uint16)
    np.testing.assert_array_equal(stored_to_hu(stored, rescale), apply_modality_lut(stored, ds))


def test_rescale_sources() -> None:
    assert rescale_for_frame(_ds(RescaleSlope=2, RescaleIntercept=-1000), []) == Rescale(
        2.0, -1000.0, "rescale"
    )
    assert rescale_for_frame(_ds(), []).source == "none"
    group = Dataset()
    item = Dataset()
    item.RescaleSlope, item.RescaleIntercept = 1, -1024
    group.PixelValueTransformationSequence = Sequence([item])
    got = rescale_for_frame(_ds(RescaleSlope=5, RescaleIntercept=5), [group])
    assert got == Rescale(1.0, -1024.0, "functional-group")


def test_lossy_padding_below_threshold_is_masked(tmp_path: Path) -> None:
    # after lossy compression padding is no longer exactly the tagged value
    spec = make_series(tmp_path, padding_stored=-2000)
    for p in spec.paths:
        ds = pydicom.dcmread(p)
        arr = ds.pixel_array.copy()
        arr[arr == -2000] += np.int16(37)  # "ringing"
        ds.PixelData = arr.tobytes()
        ds.save_as(p)
    vol = read_volume(tmp_path)
    np.testing.assert_array_equal(vol.padding_mask, spec.padding)
    assert np.all(vol.hu[spec.padding] == -1000.0)


@pytest.mark.parametrize(
    ("slope", "intercept", "bits", "signed"),
    [(1.0, -1024.0, 12, 0), (1.0, 0.0, 16, 1), (0.5, -1024.0, 16, 0), (2.0, -2048.0, 12, 0)],
)
def test_hu_to_stored_round_trips_through_pydicom_modality_lut(
    slope: float, intercept: float, bits: int, signed: int
) -> None:
    """io.hu is the one HU <-> stored conversion: pydicom's apply_modality_lut (the oracle)
    maps the writer's stored values back to the HU within half a stored step, and the reader's
    stored_to_hu / stored_value_hu agree with it exactly."""
    ds = _ds(RescaleSlope=slope, RescaleIntercept=intercept)
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, bits, signed
    lo_hu = max(-1024.0, stored_value_hu(stored_range(bits, signed)[0], slope, intercept))
    hu = np.linspace(lo_hu, 3000.0, 997)
    stored, n_clipped = hu_to_stored(hu, slope, intercept, bits, signed)
    hi_hu = stored_value_hu(stored_range(bits, signed)[1], slope, intercept)
    assert n_clipped == int(np.count_nonzero(hu > hi_hu + slope / 2))
    back = apply_modality_lut(stored, ds)
    inside = hu <= hi_hu
    np.testing.assert_allclose(back[inside], hu[inside], rtol=0, atol=slope / 2 + 1e-9)
    rescale = rescale_for_frame(ds, [])
    np.testing.assert_allclose(stored_to_hu(stored, rescale), back, rtol=1e-6, atol=1e-3)
    assert [stored_value_hu(v, slope, intercept) for v in stored[:5]] == back[:5].tolist()
