"""The fast header walk gives what pydicom gives, or hands the file over to pydicom.

Oracle: ``pydicom.dcmread(stop_before_pixels=True)`` for element values (sequences included)
and pydicom's own raw pixel-data element (``defer_size``) for the pixel data length/offset.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pydicom
import pytest
from io_dicom_factory import make_enhanced, make_series
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from pipeline.io.fastheader import Unusual, read_fast
from pipeline.io.header import PIXEL_DATA_TAG, read_header


def _fast(path: Path) -> Dataset:
    with open(path, "rb") as fp:
        return read_fast(fp, os.path.getsize(path))


def _same_as_pydicom(path: Path, ds: Dataset) -> None:
    ref = pydicom.dcmread(path, stop_before_pixels=True)
    tags = {t for t in set(ref.keys()) | set(ds.keys()) if t < 0x7FE00000}
    for tag in tags:
        assert tag in ds and tag in ref, f"{path.name}: tag {tag} only on one side"
        try:
            expected = ref[tag].value
        except Exception:  # pydicom cannot convert it either: nothing to compare
            continue
        assert ds[tag].value == expected, f"{path.name}: {tag} differs"
    assert ds.file_meta == ref.file_meta
    if PIXEL_DATA_TAG in ds:
        raw = pydicom.dcmread(path, defer_size=256)._dict[PIXEL_DATA_TAG]
        ours = ds._dict[PIXEL_DATA_TAG]
        assert getattr(ours, "value_tell", -1) == getattr(raw, "value_tell", -2)
        assert getattr(ours, "length", -1) == getattr(raw, "length", -2)


def test_fast_walk_matches_pydicom_on_its_test_files() -> None:
    folder = Path(str(get_testdata_file("CT_small.dcm", download=False))).parent
    fast = fell_back = undefined_sq = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            try:
                ds = _fast(path)
            except Unusual:
                fell_back += 1
                continue
            fast += 1
            undefined_sq += any(
                getattr(e, "length", 0) == 0xFFFFFFFF and e.tag != PIXEL_DATA_TAG
                for e in ds._dict.values()
            )
            _same_as_pydicom(path, ds)
    # most files take the fast walk; the odd ones (no preamble, big endian, deflate) do not
    assert fast > 100 and fell_back > 5, (fast, fell_back)
    assert undefined_sq > 5  # undefined-length sequences were walked, not handed over


def test_fast_walk_covers_implicit_enhanced_and_sequences(tmp_path: Path) -> None:
    implicit = make_series(tmp_path / "impl", n_slices=2, transfer_syntax=ImplicitVRLittleEndian)
    enhanced = make_enhanced(tmp_path / "enh.dcm")
    for path in (implicit.paths[0], enhanced.paths[0]):
        ds = _fast(path)  # must not fall back (would raise Unusual)
        _same_as_pydicom(path, ds)
    enh = _fast(enhanced.paths[0])
    assert len(enh.PerFrameFunctionalGroupsSequence) == 3  # converted lazily by pydicom


def test_truncated_and_foreign_files_fall_back(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "s", n_slices=1)
    data = spec.paths[0].read_bytes()
    cut = tmp_path / "cut"
    cut.write_bytes(data[:400])  # header cut inside an element
    with pytest.raises(Unusual):
        _fast(cut)
    bare = tmp_path / "bare"
    bare.write_bytes(data[132:])  # no preamble / DICM
    with pytest.raises(Unusual):
        _fast(bare)
    # and the scan still gives the same verdicts as before (pydicom path)
    assert read_header(cut).reason  # type: ignore[union-attr]
    assert not hasattr(read_header(spec.paths[0]), "reason")


def test_header_longer_than_first_read(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "s", n_slices=1)
    ds = pydicom.dcmread(spec.paths[0])
    ds.ImageComments = "x" * 40000  # header far beyond the first read
    big = tmp_path / "big.dcm"
    ds.save_as(big)
    out = _fast(big)
    assert out.ImageComments == "x" * 40000
    _same_as_pydicom(big, out)


def test_mislabelled_encoding_is_left_to_pydicom(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "s", n_slices=1)
    data = spec.paths[0].read_bytes()
    label = b"1.2.840.10008.1.2.1\x00"
    assert label in data[:400]
    wrong = tmp_path / "wrong"
    wrong.write_bytes(data.replace(label, b"1.2.840.10008.1.2\x00\x00\x00", 1))  # says implicit
    with pytest.raises(Unusual):
        _fast(wrong)
    # pydicom notices the explicit VR and reads it anyway; so does the scan
    assert not hasattr(read_header(wrong), "reason")
