"""De-identified derived series: no identifying value of the source survives anywhere in the
files, identifiers are the report's keyed pseudonyms, UIDs are consistent per key, dciodvfy
finds no new error; a missing key is a configuration error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from pipeline.errors import DicomError
from pipeline.io.deid import KEEP, Deidentifier
from pipeline.io.read import read_volume
from pipeline.io.write import write_derived_series
from pipeline.report.pseudonym import Pseudonymizer

KEY = "test-key"


def _source() -> Path:
    return Path(str(get_testdata_file("CT_small.dcm", download=False)))


def _write(out: Path, key: str = KEY) -> list[pydicom.Dataset]:
    vol = read_volume(_source())
    deid = Deidentifier(key, Pseudonymizer(True, key))
    written = write_derived_series(
        vol, vol.hu, out, series_description="CT series 1 [x]", derivation_description="t",
        uid_key="k", deidentify=deid,
    )  # fmt: skip
    dss = [pydicom.dcmread(p) for p in written.paths]
    assert written.series_instance_uid == dss[0].SeriesInstanceUID
    assert written.sop_instance_uids == [d.SOPInstanceUID for d in dss]
    return dss


def _identifying_values(ds: pydicom.Dataset) -> set[str]:
    """Every text value of the source outside the allowlist of technique attributes (kernel,
    filter type, ... are kept on purpose): patient, study, site, device, dates, UIDs, text."""
    out: set[str] = set()
    for elem in ds.iterall():
        if elem.keyword in KEEP:
            continue
        if elem.VR in ("PN", "LO", "SH", "DA", "TM", "DT", "UI", "ST", "LT", "AS") and elem.value:
            values = elem.value if isinstance(elem.value, list | tuple) else [elem.value]
            if "ClassUID" in elem.keyword or elem.keyword == "TransferSyntaxUID":
                continue
            out |= {str(v) for v in values if len(str(v)) >= 3}
    return out


def test_no_source_identifier_survives(tmp_path: Path) -> None:
    src = pydicom.dcmread(_source())
    (ds,) = _write(tmp_path)
    raw = (tmp_path / "IM00001.dcm").read_bytes()
    keep = {"HFS", "CT", "HU", "YES", "NO", "AXIAL", "ldct-pipeline"}  # shared vocabulary
    leaked = [v for v in _identifying_values(src) - keep if v.encode("latin-1", "ignore") in raw]
    assert leaked == []
    alias = Pseudonymizer(True, KEY)(str(src.PatientID))  # the QA report's pseudonym
    assert ds.PatientID == alias and str(ds.PatientName) == alias
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.StudyInstanceUID != src.StudyInstanceUID
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID != src.SOPInstanceUID
    assert not any(e.tag.is_private for e in ds)


def test_uids_consistent_per_key(tmp_path: Path) -> None:
    a, b, c = _write(tmp_path / "a")[0], _write(tmp_path / "b")[0], _write(tmp_path / "c", "k2")[0]
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert getattr(a, kw) == getattr(b, kw) != getattr(c, kw)
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_dciodvfy_adds_no_error(tmp_path: Path) -> None:
    _write(tmp_path)

    def errors(p: Path) -> set[str]:
        res = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, check=False)
        return {ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")}

    assert errors(tmp_path / "IM00001.dcm") - errors(_source()) == set()


def test_burned_in_annotation_is_refused() -> None:
    ds = pydicom.dcmread(_source())
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(DicomError, match="burned-in annotation"):
        Deidentifier(KEY, Pseudonymizer(True, KEY))(ds)


def test_denoise_without_key_is_a_config_error(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LDCT_PSEUDONYM_KEY", raising=False)
    shutil.copy(_source(), tmp_path / "ct.dcm")
    res = run_cli("denoise", tmp_path / "ct.dcm", "--out", tmp_path / "out",
                  "--set", "output.deidentify=true")  # fmt: skip
    assert res.exit_code == 2
    assert "LDCT_PSEUDONYM_KEY" in res.stdout + res.stderr


def test_denoise_deidentifies_with_the_report_key(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import json

    monkeypatch.setenv("LDCT_PSEUDONYM_KEY", KEY)
    shutil.copy(_source(), tmp_path / "ct.dcm")
    out = tmp_path / "out"
    args = ("denoise", tmp_path / "ct.dcm", "--out", out, "--set", "output.deidentify=true")
    res = run_cli(*args)
    assert res.exit_code == 0, res.stdout + res.stderr
    (row,) = json.loads((out / "manifest.json").read_text())["rows"]
    (f,) = sorted(Path(row["output_path"]).glob("*.dcm"))
    ds = pydicom.dcmread(f)
    src = pydicom.dcmread(_source())
    assert ds.SeriesInstanceUID == row["derived_series_uid"]
    assert ds.PatientID == Pseudonymizer(True, KEY)(str(src.PatientID))
    assert ds.SeriesDescription.startswith("CT series ")  # no source text
    assert run_cli(*args).exit_code == 0  # rerun: verified and skipped, same UIDs
    (row2,) = json.loads((out / "manifest.json").read_text())["rows"]
    assert row2["status"] == "skipped" and row2["derived_series_uid"] == row["derived_series_uid"]
