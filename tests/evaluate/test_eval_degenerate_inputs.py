"""Red-team inputs of ``ldct evaluate`` (issue 20, item 4): a JPEG Lossless stream whose
entropy-coded data are zeroed made the evaluation die with ZeroDivisionError; it is now refused
at the boundary with the plausibility reason, and a good series beside it is still evaluated."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_fragments

pydicom_data = pytest.importorskip("pydicom.data")


def _testfile(name: str) -> Path:
    src = pydicom_data.get_testdata_file(name, download=False)
    if src is None:
        pytest.skip(f"pydicom test file {name} not shipped")
    return Path(src)


def _zeroed_jpeg_lossless(dst: Path) -> None:
    """pydicom's bad_sequence.dcm (CT, JPEG Lossless SV1) with its scan data zeroed: the JPEG
    headers stay valid, the decoder returns an image that is no CT (no air anywhere)."""
    ds = pydicom.dcmread(_testfile("bad_sequence.dcm"))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    frame = bytearray(next(f for f in generate_fragments(ds.PixelData) if f))
    sos = frame.find(b"\xff\xda")  # start of scan; its header length follows
    start = sos + 2 + int.from_bytes(frame[sos + 2 : sos + 4], "big")
    frame[start:-2] = bytes(len(frame) - 2 - start)  # keep the EOI marker
    ds.PixelData = encapsulate([bytes(frame)])
    dst.parent.mkdir(parents=True)
    ds.save_as(dst)


def test_zeroed_jpeg_lossless_is_refused_with_its_reason(tmp_path: Path, run_cli: Callable) -> None:
    _zeroed_jpeg_lossless(tmp_path / "in" / "zeroed" / "zeroed.dcm")
    res = run_cli("evaluate", "--low", tmp_path / "in", "--out", tmp_path / "out")
    assert res.exit_code == 3, res.stderr
    assert "Traceback" not in res.stderr and "ZeroDivisionError" not in res.stderr
    assert "no patient could be evaluated" in res.stderr
    assert "implausible pixel values: no air anywhere in the series" in " ".join(res.stderr.split())


def test_a_good_series_beside_it_is_evaluated(tmp_path: Path, run_cli: Callable) -> None:
    _zeroed_jpeg_lossless(tmp_path / "in" / "zeroed" / "zeroed.dcm")
    (tmp_path / "in" / "good").mkdir()
    shutil.copy(_testfile("CT_small.dcm"), tmp_path / "in" / "good" / "CT_small.dcm")
    res = run_cli("evaluate", "--low", tmp_path / "in", "--out", tmp_path / "out")
    assert res.exit_code == 1, res.stderr  # some patients skipped
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    good = str(pydicom.dcmread(tmp_path / "in" / "good" / "CT_small.dcm").PatientID)
    assert [p["patient"] for p in summary["patients"]] == [good]
    (problem,) = summary["problems"]
    assert "implausible pixel values: no air anywhere in the series" in problem
    res = run_cli("report", tmp_path / "out", "--out", tmp_path / "report")
    assert res.exit_code == 0, res.stderr
    index = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert 'id="problems"' in index and "no air anywhere in the series" in index


def test_patient_folder_with_any_bytes_is_evaluated_and_reported(
    tmp_path: Path, run_cli: Callable
) -> None:
    """A dataset folder named with an undecodable byte and a newline (the patient key of the
    demo layout) used to end in UnicodeEncodeError when the tables were written; it is written
    escaped (pipeline.utils.text.printable) and the report finds its images."""
    import os

    import pandas as pd

    from pipeline.simulate.cohort import make_demo_cohort

    root = tmp_path / "data"
    make_demo_cohort(root, n_patients=1, n_slices=4, size=96, seed=2)
    bad = os.fsencode(root) + b"/bad\xff\nname"
    os.rename(os.fsencode(root / "DEMO001"), bad)
    (root / "cohort.json").unlink()
    res = run_cli("evaluate", "--low", root, "--full", root, "--out", tmp_path / "eval")
    assert res.exit_code == 0, res.stderr
    table = pd.read_parquet(tmp_path / "eval" / "per_patient.parquet")
    assert set(table["patient"]) == {"bad\\xff\\nname"}
    res = run_cli("report", tmp_path / "eval", "--out", tmp_path / "report")
    assert res.exit_code == 0, res.stderr
    (page,) = (tmp_path / "report" / "patients").glob("*.html")
    assert page.name.startswith("bad_xff_nname-")
    html = page.read_text(encoding="utf-8")
    assert "Patient bad\\xff\\nname" in html and "Images unavailable" not in html
    try:
        res = run_cli("evaluate", "--low", root, "--full", root, "--out", tmp_path / "pseudo",
                      "--pseudonymize", "--key", "k")  # fmt: skip
    finally:
        logging.captureWarnings(False)  # the pseudonymised run's log policy captured them
    assert res.exit_code == 0, res.stderr
    table = pd.read_parquet(tmp_path / "pseudo" / "per_patient.parquet")
    assert set(table["patient"]) == {"P-" + _hmac10("k", bad.rsplit(b"/", 1)[1])}


def _hmac10(key: str, raw: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()[:10]
