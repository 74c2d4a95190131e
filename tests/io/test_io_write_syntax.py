"""Lossless output transfer syntaxes: every compressed output decodes bit-exactly to the
uncompressed one, with a decoder independent of the encoder (GDCM decodes what pylibjpeg and
pyjpegls encoded), and reads back to the same HU through the pipeline's reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_dicom_factory import make_series
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array

from pipeline.errors import DicomError
from pipeline.io.read import read_volume
from pipeline.io.write import OutputSyntax, write_derived_series

COMPRESSED = [s for s in OutputSyntax if s is not OutputSyntax.UNCOMPRESSED]
#: a decoder independent of each encoder (pylibjpeg-rle, pyjpegls, pylibjpeg-openjpeg)
ORACLE_DECODER = {
    OutputSyntax.RLE: "pydicom",
    OutputSyntax.JPEG_LS: "gdcm",
    OutputSyntax.JPEG2000: "gdcm",
}


def _sources(tmp_path: Path) -> dict[str, Path]:
    out = {"CT_small (signed 16 bit)": Path(str(get_testdata_file("CT_small.dcm", download=False)))}
    make_series(
        tmp_path / "u12",
        n_slices=2,
        rows=40,
        cols=36,
        bits_stored=12,
        pixel_representation=0,
        padding_stored=0,
    )
    out["synthetic (unsigned 12 bit, padding)"] = tmp_path / "u12"
    ect = get_testdata_file("eCT_Supplemental.dcm", download=False)
    if ect:
        out["eCT (Enhanced CT, unsigned 16 bit)"] = Path(ect)
    return out


def _write(src: Path, out: Path, syntax: OutputSyntax) -> list[Path]:
    vol = read_volume(src)
    hu = vol.hu + np.float32(3.0)  # new pixels, not a copy of the source's
    kw = {"series_description": "D", "derivation_description": "t", "uid_key": "k"}
    return write_derived_series(vol, hu, out, transfer_syntax=syntax, **kw).paths  # type: ignore[arg-type]


@pytest.mark.parametrize("syntax", COMPRESSED, ids=lambda s: s.value)
def test_lossless_outputs_decode_bit_exactly(tmp_path: Path, syntax: OutputSyntax) -> None:
    for name, src in _sources(tmp_path).items():
        plain = _write(src, tmp_path / "plain" / name, OutputSyntax.UNCOMPRESSED)
        packed = _write(src, tmp_path / syntax.value / name, syntax)
        assert [p.name for p in plain] == [p.name for p in packed]
        for a, b in zip(plain, packed, strict=True):
            ds = pydicom.dcmread(b)
            assert ds.file_meta.TransferSyntaxUID == syntax.uid, name
            assert ds.SOPInstanceUID == pydicom.dcmread(a).SOPInstanceUID  # UIDs kept
            ref = pixel_array(a)
            decoded = pixel_array(b, decoding_plugin=ORACLE_DECODER[syntax])
            np.testing.assert_array_equal(decoded, ref, name)
        np.testing.assert_array_equal(
            read_volume(packed[0].parent).hu, read_volume(plain[0].parent).hu, name
        )


def test_compressed_files_are_smaller(tmp_path: Path) -> None:
    src = _sources(tmp_path)["CT_small (signed 16 bit)"]
    size = {s: _write(src, tmp_path / s.value, s)[0].stat().st_size for s in OutputSyntax}
    assert all(size[s] < size[OutputSyntax.UNCOMPRESSED] for s in COMPRESSED)


def test_unavailable_encoder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.io import dicom_encode

    monkeypatch.setitem(dicom_encode._SYNTAX_PLUGINS, OutputSyntax.JPEG_LS, "no-such-plugin")
    with pytest.raises(DicomError, match="jpeg-ls needs the no-such-plugin encoder plugin"):
        dicom_encode.check_encoder(OutputSyntax.JPEG_LS)


def test_jpeg2000_refuses_images_below_its_minimum(tmp_path: Path) -> None:
    make_series(tmp_path / "tiny", n_slices=1, rows=24, cols=20)
    with pytest.raises(DicomError, match="at least 32x32 pixels"):
        _write(tmp_path / "tiny", tmp_path / "out", OutputSyntax.JPEG2000)


@pytest.mark.parametrize("syntax", COMPRESSED, ids=lambda s: s.value)
def test_encoder_check_catches_pixels_that_do_not_round_trip(syntax: OutputSyntax) -> None:
    from pipeline.io.dicom_encode import encode_pixels, file_meta, set_pixels

    ds = pydicom.Dataset()
    ds.file_meta = file_meta("1.2.3")
    ds.SOPInstanceUID = "1.2.3"
    stored = (np.arange(40 * 36).reshape(40, 36) % 3000).astype(np.int16)
    set_pixels(ds, stored, 16, 1)
    with pytest.raises(DicomError, match="does not decode to the written pixels"):
        encode_pixels(ds, stored + np.int16(1), syntax)  # not what the dataset holds
