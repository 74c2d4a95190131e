"""``pipeline.io.tags.value``: a damaged number string reads as absent, as documented (a fuzz
mutant with SliceThickness '_.5' crashed ``read_series`` with a ValueError)."""

from __future__ import annotations

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from pipeline.io.tags import value


def _raw(keyword: str, vr: str, text: bytes) -> Dataset:
    ds = Dataset()
    tag = Tag(keyword)
    ds._dict[tag] = RawDataElement(tag, vr, len(text), text, 0, False, True)
    return ds


def test_unparseable_numbers_read_as_absent_good_ones_as_numbers() -> None:
    assert value(_raw("SliceThickness", "DS", b"_.5 "), "SliceThickness") is None
    assert value(_raw("PixelSpacing", "DS", b"0.7\\x.7"), "PixelSpacing") is None
    assert value(_raw("InstanceNumber", "IS", b"1?"), "InstanceNumber") is None
    assert value(_raw("SliceThickness", "DS", b"1.25"), "SliceThickness") == 1.25
    assert value(_raw("PixelSpacing", "DS", b"0.7\\0.75 "), "PixelSpacing") == [0.7, 0.75]
    assert value(_raw("InstanceNumber", "IS", b"12"), "InstanceNumber") == 12
    assert value(_raw("SeriesDescription", "LO", b"BODY 1mm"), "SeriesDescription") == "BODY 1mm"
