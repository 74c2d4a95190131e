"""Mutated files (truncations, flipped bytes) never escape as anything but a skip or LdctError."""

from __future__ import annotations

import random
from pathlib import Path

import pydicom
import pytest
from io_dicom_factory import make_series
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from pipeline.errors import LdctError
from pipeline.io.discover import scan
from pipeline.io.read import read_series

N_MUTANTS = 45


def _source(tmp_path: Path, syntax: str) -> tuple[bytes, int]:
    if syntax == "jpeg-ls":  # no JPEG-LS encoder installed: relabel pydicom's shipped file
        ds = pydicom.dcmread(get_testdata_file("MR_small_jpeg_ls_lossless.dcm", download=False))
        ds.Modality = "CT"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        out = tmp_path / "jls.dcm"
        ds.save_as(out)
        return out.read_bytes(), int(ds.Rows)
    src = make_series(tmp_path / "src", n_slices=1, rows=64, cols=64, transfer_syntax=syntax)
    return src.paths[0].read_bytes(), 64


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless, "jpeg-ls"]
)
def test_mutants_are_skipped_or_read(tmp_path: Path, syntax: str) -> None:
    data, size = _source(tmp_path, syntax)
    rng = random.Random(1234)
    mutants = tmp_path / "mutants"
    mutants.mkdir()
    for i in range(N_MUTANTS):
        buf = bytearray(data)
        kind = i % 3
        if kind == 0:  # truncate anywhere
            buf = buf[: rng.randrange(1, len(buf))]
        elif kind == 1:  # flip bytes in the header region
            for _ in range(8):
                buf[rng.randrange(128, min(len(buf), 900))] = rng.randrange(256)
        else:  # flip bytes in the pixel region
            for _ in range(32):
                buf[rng.randrange(len(buf) // 2, len(buf))] = rng.randrange(256)
        (mutants / f"m{i:02d}").write_bytes(bytes(buf))
    result = scan([mutants])
    accounted = len(result.skipped) + sum(len(r.files) for r in result.series)
    assert accounted == N_MUTANTS
    assert all(s.reason for s in result.skipped)
    for rec in result.series:
        try:
            vol = read_series(rec, workers=2)
        except LdctError as exc:  # refused with a message, never a traceback
            assert str(exc)
            continue
        assert vol.hu.shape[1:] == (size, size)
