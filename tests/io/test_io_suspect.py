"""Suspect inputs are flagged: lossy compression (stated or by transfer syntax), missing Type 1
attributes (dciodvfy, an independent verifier, is the oracle on real files), invalid UIDs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from pipeline.io.discover import scan
from pipeline.io.suspect import is_lossy, lossy_flag, record_flags


def _file(name: str) -> Path:
    found = get_testdata_file(name, download=False)
    if not found:
        pytest.skip(f"{name} needs pydicom-data (dev extra)")
    return Path(found)


def _flags(path: Path) -> list[str]:
    (series,) = scan([path]).series
    return record_flags(series.files)


def test_lossy_j2k_source_is_flagged_with_its_ratio() -> None:
    path = _file("693_J2KI.dcm")
    ratio = float(pydicom.dcmread(path, stop_before_pixels=True).LossyImageCompressionRatio)
    flags = _flags(path)
    assert is_lossy(flags)
    assert f"ratio {ratio:.4g}:1" in flags[0] and "LossyImageCompression 01" in flags[0]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
@pytest.mark.parametrize("name", ["693_J2KI.dcm", "CT_small.dcm", "bad_sequence.dcm"])
def test_missing_type1_attributes_match_dciodvfy(name: str) -> None:
    path = _file(name)
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    text = res.stdout + res.stderr
    missing_by_dciodvfy = {
        line.split("Element=<")[1].split(">")[0]
        for line in text.splitlines()
        if line.startswith("Error - Missing attribute Type 1 Required")
    }
    flagged: set[str] = set()
    for flag in _flags(path):
        if flag.startswith("missing Type 1 attribute(s): "):
            flagged |= set(flag.split(": ", 1)[1].split(", "))
    assert flagged == missing_by_dciodvfy


def test_invalid_uids_and_clean_files() -> None:
    assert _flags(_file("CT_small.dcm")) == []
    bad = _flags(_file("bad_sequence.dcm"))
    assert "invalid UID(s) in SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID" in bad


@pytest.mark.parametrize(
    ("stated", "syntax", "lossy"),
    [
        (None, "1.2.840.10008.1.2.4.50", "transfer syntax JPEG Baseline"),
        (None, "1.2.840.10008.1.2.4.91", "LossyImageCompression not stated"),
        ("00", "1.2.840.10008.1.2.4.91", None),
        (None, "1.2.840.10008.1.2.4.90", None),  # JPEG 2000 lossless only
        ("01", "1.2.840.10008.1.2.1", "LossyImageCompression 01"),  # decompressed since
    ],
)
def test_lossy_by_statement_or_transfer_syntax(
    stated: str | None, syntax: str, lossy: str | None
) -> None:
    ds = Dataset()
    if stated is not None:
        ds.LossyImageCompression = stated
    flag = lossy_flag(ds, syntax)
    assert (flag is None) == (lossy is None)
    if lossy is not None:
        assert flag is not None and lossy in flag


def test_inspect_json_lists_flags(run_cli) -> None:  # type: ignore[no-untyped-def]
    res = run_cli("inspect", str(_file("693_J2KI.dcm")), "--json", "--headers-only")
    assert res.exit_code == 0, res.stderr
    (row,) = json.loads(res.stdout)["series"]
    assert row["lossy"] is True
    assert any("FrameOfReferenceUID" in f for f in row["flags"])
