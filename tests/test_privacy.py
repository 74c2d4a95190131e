"""Privacy by construction: ``ldct qa --pseudonymize`` leaves no identifier of its inputs anywhere.

Inputs: a three-patient demo-layout cohort rewritten with short numeric identifiers (PatientID
"1", PatientName "1^1", AccessionNumber "2"; PatientID "12") beside ordinary ones, fresh
Study/Series/SOP Instance UIDs, patient folders named by PatientID (as Mayo/TCIA exports are) and
a denoised series for two of them (the third is a "problem" that reaches summary.json and stderr).
The real CLI runs in a subprocess; then every file under the output (CSV, Parquet cells and
metadata, JSON keys and values, HTML text nodes and attributes, the PNGs embedded in the pages
with their metadata chunks, file and folder names) and stderr/stdout are searched for every
identifier value of every input file. Long identifiers are searched as substrings of the raw
bytes as well; short ones ("1", "2", "12") as exact fields (a table cell, a JSON string, a whole
HTML text node or attribute, a path component, a quoted or leading token on stderr), which a real
leak (the patient column, a page title, a log line naming the patient) would be.
Numbers must survive: the pages' metric values equal the evaluation's, the PNGs decode.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.uid import generate_uid
from scipy import ndimage as ndi

KEY = "s3cr3t-privacy-test-key"
PATIENTS = [
    # folder = PatientID (numbered export), name, birth date, accession, denoised?
    ("1", "1^1", "19700101", "2", True),
    ("L067-XJ93", "Doe^Jane^Q", "19581224", "ACC778899", True),
    ("12", "Roe^Richard", "20010203", "A7", False),
]
ID_TAGS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "AccessionNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
)
SHORT = 5  # identifiers shorter than this are checked as exact fields only


def _rewrite(src: Path, dst: Path, pid: str, name: str, birth: str, acc: str, uids: dict) -> None:
    dst.mkdir(parents=True)
    series = generate_uid()
    for f in sorted(src.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = pid, name, birth
        ds.AccessionNumber = acc
        ds.StudyInstanceUID = uids["study"]
        ds.FrameOfReferenceUID = uids["frame"]
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(dst / f.name)


def _build_inputs(root: Path) -> tuple[Path, Path]:
    from pipeline.io.read import read_volume
    from pipeline.io.write import write_derived_series
    from pipeline.simulate.cohort import make_demo_cohort

    demo = root / "demo"
    make_demo_cohort(demo, n_patients=len(PATIENTS), n_slices=4, size=96, seed=5)
    cohort, denoised = root / "cohort", root / "denoised"
    for (pid, name, birth, acc, has_den), src in zip(
        PATIENTS, sorted(p for p in demo.iterdir() if p.is_dir()), strict=True
    ):
        uids = {"study": generate_uid(), "frame": generate_uid()}
        for dose in ("full_dose", "quarter_dose"):
            _rewrite(src / dose, cohort / pid / dose, pid, name, birth, acc, uids)
        pair = json.loads((src / "pair.json").read_text())
        pair = {"patient": pid, "full": f"{pid}/full_dose", "low": f"{pid}/quarter_dose",
                "lesions": pair["lesions"]}  # fmt: skip
        (cohort / pid / "pair.json").write_text(json.dumps(pair))
        if has_den:
            vol = read_volume(cohort / pid / "quarter_dose")
            write_derived_series(
                vol,
                ndi.gaussian_filter(vol.hu, sigma=(0, 0.8, 0.8)).astype(np.float32),
                denoised / pid,
                series_description="smoothed (test)",
                derivation_description="gaussian sigma 0.8 px (test fixture)",
                uid_key="privacy-test",
            )
    return cohort, denoised


def _identifiers(*trees: Path) -> set[str]:
    found: set[str] = set()
    for tree in trees:
        for f in tree.rglob("*.dcm"):
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            for tag in ID_TAGS:
                value = str(ds.get(tag) or "").strip()
                if value:
                    found.add(value)
            for item in ds.get("SourceImageSequence") or []:
                found.add(str(item.ReferencedSOPInstanceUID))
        found |= {p.name for p in tree.iterdir() if p.is_dir()}  # patient folders
    return found


class _Html(HTMLParser):
    """Text nodes and attribute values; the texts of <title>, <h1> and <a> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.attrs: list[str] = []
        self.named: list[str] = []  # where a page names its patient
        self._tags: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())
            svg = "svg" in self._tags  # <title> of an SVG shape names an insert, not a patient
            if self._tags and self._tags[-1] in ("title", "h1", "a") and not svg:
                self.named.append(data.strip())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += [v for _, v in attrs if v is not None]
        self._tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._tags:
            del self._tags[len(self._tags) - 1 - self._tags[::-1].index(tag) :]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += [v for _, v in attrs if v is not None]


ID_KEYS = ("patient", "series", "models", "name")


def _id_key(key: str) -> bool:
    return key in ("patient", "series") or "uid" in key.lower()


def _tokens(text: str) -> list[str]:
    """Words of a name or title ("LDCT QA — 1", "1-3f2a.html", "Patient 1 fail")."""
    return [t for t in re.split(r"[\s\-—_/.,;:()'\"]+", text) if t]


def _json_fields(o: object, key: str = "") -> tuple[list[str], list[str]]:
    """(identifier fields, every string) of a JSON document."""
    ids: list[str] = []
    texts: list[str] = []
    if isinstance(o, dict):
        for k, v in o.items():
            texts.append(str(k))
            if key == "models":
                ids.append(str(k))
            i, t = _json_fields(v, key if _id_key(key) else str(k))
            ids += i
            texts += t
    elif isinstance(o, list):
        for v in o:
            i, t = _json_fields(v, key)
            ids += i
            texts += t
    elif isinstance(o, str):
        texts.append(o)
        if _id_key(key):
            ids.append(o)
    return ids, texts


def _table_fields(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(cells of the patient and UID columns, every cell and column name as text)."""
    ids: list[str] = []
    texts: list[str] = [str(c) for c in df.columns]
    for col in df.columns:
        values = list(df[col].dropna().astype(str))
        texts += values
        if col in ID_KEYS or "uid" in str(col).lower():
            ids += values
    return ids, texts


def _png_text(png: bytes, where: str) -> list[str]:
    from PIL import Image

    img = Image.open(io.BytesIO(png))
    img.load()  # a corrupted (text-replaced) image fails here
    assert img.size[0] > 0, where
    return [f"{k} {v}" for kv in (img.info, getattr(img, "text", {})) for k, v in kv.items()]


def _fields_of(path: Path) -> tuple[list[str], list[str], list[bytes]]:
    """(identifier fields, texts, byte blobs) of one output file."""
    data = path.read_bytes()
    blobs = [data]
    ids: list[str] = []
    texts: list[str] = []
    if path.suffix == ".parquet":
        pf = pq.ParquetFile(path)
        blobs += [k + b" " + v for k, v in (pf.metadata.metadata or {}).items()]
        ids, texts = _table_fields(pf.read().to_pandas())
    elif path.suffix == ".csv" and data.strip():
        ids, texts = _table_fields(pd.read_csv(path, dtype=str, keep_default_na=False))
    elif path.suffix == ".json":
        ids, texts = _json_fields(json.loads(data))
    elif path.suffix == ".html":
        parser = _Html()
        parser.feed(data.decode("utf-8"))
        texts = parser.texts + parser.attrs
        ids = [t for n in parser.named for t in _tokens(n)]
        ids += [t for a in parser.attrs if a.endswith(".html") for t in _tokens(a)]
        css_title = re.findall(r'@top-left \{ content: "([^"]*)"', data.decode("utf-8"))
        ids += [t for c in css_title for t in _tokens(c)]
        for value in parser.attrs:
            if value.startswith("data:image/png;base64,"):
                png = base64.b64decode(value.split(",", 1)[1], validate=True)
                blobs.append(png)
                texts += _png_text(png, f"{path}: embedded PNG")
    elif path.suffix == ".png":
        texts = _png_text(data, str(path))
    return ids, texts, blobs


def _leaks(
    short: set[str], long: set[str], ids: list[str], texts: list[str], blobs: list[bytes]
) -> set[str]:
    found = {s for s in short | long if s in ids}
    found |= {s for s in long for t in [*ids, *texts] if s in t}
    found |= {s for s in long for b in blobs if s.encode() in b}
    for s in short:  # a text naming a patient, or a problem line led by the patient key
        e = re.escape(s)
        pattern = rf"\bpatient\s+{e}\b|PatientID {e}\b|^{e}(/\w+)?: |['\"]{e}['\"]"
        if any(re.search(pattern, t, re.IGNORECASE) for t in texts):
            found.add(s)
    return found


def _stream_leaks(text: str, short: set[str], long: set[str]) -> set[str]:
    found = {s for s in long if s in text}
    for s in short:
        e = re.escape(s)
        pattern = (
            rf"(^|\n)\s*(?:(?-i:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+)?{e}(/\w+)?:\s"
            rf"|['\"]{e}['\"]|patient {e}\b"
            rf"|PatientID {e}\b|\b(FLAG|ok)\s+{e}\s"
        )
        if re.search(pattern, text, re.IGNORECASE):
            found.add(s)
    return found


def _run_qa(cohort: Path, denoised: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LDCT_NO_PROGRESS": "", "PYTHONWARNINGS": "default", "COLUMNS": "400"}
    env.pop("LDCT_PSEUDONYM_KEY", None)
    cmd = [sys.executable, "-m", "pipeline.cli.main", "qa", "--low", str(cohort), "--full",
           str(cohort), "--denoised", str(denoised), "--out", str(out), *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def pseudonymised_qa(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("privacy")
    cohort, denoised = _build_inputs(root)
    out = root / "qa"
    proc = _run_qa(cohort, denoised, out, "--pseudonymize", "--key", KEY)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: patient "12" has no denoised
    assert (out / "report" / "index.html").is_file(), proc.stderr[-3000:]
    return cohort, denoised, out, proc


def _leaks_under(out: Path, ids: set[str], streams: dict[str, str]) -> dict[str, set[str]]:
    """Identifiers found per output file (and folder) and per stream, by the checks above."""
    short = {s for s in ids if len(s) < SHORT}
    long = ids - short
    leaks: dict[str, set[str]] = {}
    for path in out.rglob("*"):
        parts = list(path.relative_to(out).parts)
        found = _leaks(short, long, [t for p in parts for t in _tokens(p)], parts, [])
        if path.is_file():
            found |= _leaks(short, long, *_fields_of(path))
        if found:
            leaks[str(path.relative_to(out))] = found
    for name, text in streams.items():
        found = _stream_leaks(text, short, long)
        if found:
            leaks[name] = found
    return leaks


def test_no_identifier_anywhere_in_output_or_stderr(pseudonymised_qa) -> None:
    cohort, denoised, out, proc = pseudonymised_qa
    ids = _identifiers(cohort, denoised) | {KEY}
    assert {"1", "1^1", "2", "12", "L067-XJ93", "Doe^Jane^Q", "19581224"} <= ids
    assert any(len(s) > 30 and s.count(".") > 3 for s in ids)  # UIDs are among them
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".csv", ".parquet", ".json", ".html"}
    leaks = _leaks_under(out, ids, {"stderr": proc.stderr, "stdout": proc.stdout})
    assert not leaks, f"identifiers found: {leaks}"


def test_evaluate_pseudonymize_no_reference(
    pseudonymised_qa, tmp_path, run_cli, monkeypatch
) -> None:
    """``ldct evaluate --pseudonymize`` alone; every series of the tree is a patient (PatientIDs
    repeat, so the keys carry a series suffix before they are pseudonymised)."""
    cohort, _, _, _ = pseudonymised_qa
    out = tmp_path / "eval"
    args = ["evaluate", "--low", str(cohort), "--out", str(out), "--pseudonymize", "--key", KEY]
    monkeypatch.setattr(sys, "argv", ["ldct", *args])  # as the console script sees them
    try:
        res = run_cli(*args)
    finally:
        logging.captureWarnings(False)
    assert res.exit_code == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["patients"]) == 2 * len(PATIENTS)
    assert all(re.fullmatch(r"P-[0-9a-f]{10}", p["patient"]) for p in summary["patients"])
    assert summary["pseudonymization"]["key"] == "given"
    assert summary["command"] == "ldct evaluate --low … --out … --pseudonymize --key ***"
    streams = {"stdout": res.stdout, "stderr": res.stderr}
    leaks = _leaks_under(out, _identifiers(cohort) | {KEY}, streams)
    assert not leaks, f"identifiers found: {leaks}"


def test_pages_name_pseudonyms_and_keep_numbers(pseudonymised_qa) -> None:
    from pipeline.report.pseudonym import Pseudonymizer

    _, _, out, _ = pseudonymised_qa
    pseudo = Pseudonymizer(True, KEY)
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    shown = sorted(p["patient"] for p in summary["patients"])
    assert shown == sorted(pseudo(pid) for pid, *_ in PATIENTS)
    assert all(re.fullmatch(r"P-[0-9a-f]{10}", s) for s in shown)
    for rec in summary["patients"]:
        for uid in rec["series"].values():
            assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64, uid
    per_patient = pd.read_parquet(out / "evaluation" / "per_patient.parquet")
    per_slice = pd.read_parquet(out / "evaluation" / "per_slice.parquet")
    assert per_slice["sop_instance_uid"].str.fullmatch(r"2\.25\.[1-9][0-9]*").all()
    assert set(per_patient["patient"]) == set(shown)
    checked = 0
    for page in (out / "report" / "patients").glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "Images unavailable" not in html and 'href="data:image/png;base64,' in html
        name = re.search(r"<h1>Patient (P-[0-9a-f]{10}) ", html)
        assert name, page
        rows = per_patient[per_patient["patient"] == name.group(1)]
        pattern = r'data-key="(low_mean|denoised_mean)" data-value="([^"]+)"'
        for key, value in re.findall(pattern, html):
            comparison = "low_vs_full" if key == "low_mean" else "denoised_vs_full"
            assert float(value) in set(rows[rows["comparison"] == comparison]["mean"]), value
            checked += 1
        parser = _Html()
        parser.feed(html)
        for value in parser.attrs:  # every embedded image still decodes
            if value.startswith("data:image/png;base64,"):
                _png_text(base64.b64decode(value.split(",", 1)[1], validate=True), str(page))
    assert checked >= 8
    psnr = per_patient[(per_patient["metric"] == "psnr") & (per_patient["profile"] == "redcnn")]
    index = (out / "report" / "index.html").read_text(encoding="utf-8")
    from pipeline.report.context import fmt

    for value in psnr["mean"]:
        assert f">{fmt(value)}<" in index  # e.g. 31.25 is not turned into 3P-….25
    (problem,) = summary["problems"]  # patient "12" has no denoised series; the index says so
    assert problem == f"{pseudo('12')}: no denoised series found for the low-dose series"
    assert f"<li>{problem}</li>" in index


def test_same_key_same_pseudonyms_and_uids() -> None:
    from pipeline.io.deid import Deidentifier
    from pipeline.report.pseudonym import Pseudonymizer

    a, b, other = Pseudonymizer(True, KEY), Pseudonymizer(True, KEY), Pseudonymizer(True, "x")
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    assert a("1") == b("1") != other("1") and a("1") != a("12")
    assert a.uid(uid) == b.uid(uid) != other.uid(uid)
    assert a.uid(uid) == Deidentifier(KEY, a).uid(uid)  # as output.deidentify maps it
    assert re.fullmatch(r"2\.25\.[1-9][0-9]*", a.uid(uid)) and len(a.uid(uid)) <= 64
    off = Pseudonymizer(False)
    assert off("1") == "1" and off.uid(uid) == uid


def test_the_checks_find_short_and_long_identifiers(tmp_path) -> None:
    """The checks can fail: a patient "1" in a table, a JSON record, a title, a log line."""
    short, long = {"1", "12"}, {"L067-XJ93", "1.2.840.99.1"}
    pd.DataFrame({"patient": ["1", "P-0123456789"], "value": [1, 2]}).to_parquet(
        tmp_path / "t.parquet"
    )
    pd.DataFrame({"sop_instance_uid": ["1.2.840.99.1"], "n": ["12"]}).to_csv(tmp_path / "t.csv")
    (tmp_path / "s.json").write_text(json.dumps({"patients": [{"patient": "12", "n": "1"}]}))
    (tmp_path / "p.html").write_text("<title>LDCT QA — 1</title><p>12 slices, 1 flagged</p>")
    (tmp_path / "q.html").write_text('<a href="patients/12-0a1b2c3d.html">P-0123456789</a>')
    found = {f.name: _leaks(short, long, *_fields_of(f)) for f in tmp_path.iterdir()}
    assert found == {"t.parquet": {"1"}, "t.csv": {"1.2.840.99.1"}, "s.json": {"12"},
                     "p.html": {"1"}, "q.html": {"12"}}  # fmt: skip
    assert _stream_leaks("WARNING  12: no denoised series\nevaluate 1/2 done", short, long) == {
        "12"
    }
    assert _stream_leaks("report 1/12 patients, 12 slices", short, long) == set()


@pytest.mark.slow
def test_without_pseudonymize_identifiers_are_shown(pseudonymised_qa, tmp_path) -> None:
    """The same run without --pseudonymize shows the PatientIDs (the checks see them)."""
    cohort, denoised, _, _ = pseudonymised_qa
    out = tmp_path / "plain"
    proc = _run_qa(cohort, denoised, out)
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert sorted(p["patient"] for p in summary["patients"]) == sorted(p[0] for p in PATIENTS)
    ids, texts, blobs = _fields_of(out / "evaluation" / "summary.json")
    assert _leaks({"1", "12"}, {"L067-XJ93"}, ids, texts, blobs) == {"1", "12", "L067-XJ93"}
    ids, texts, blobs = _fields_of(out / "report" / "index.html")
    assert _leaks({"1", "12"}, set(), ids, texts, blobs) == {"1", "12"}
    assert _stream_leaks(proc.stderr, {"12"}, set()) == {"12"}  # "12: no denoised series"
    # PatientName, birth date and accession are never written, pseudonymised or not
    never = {v for _, name, birth, acc, _ in PATIENTS for v in (name, birth, acc) if len(v) > 4}
    assert not _leaks_under(out, never, {"stderr": proc.stderr, "stdout": proc.stdout})


def test_recorded_command_never_holds_the_key_and_withholds_paths() -> None:
    from pipeline.report.pseudonym import Pseudonymizer

    argv = ["ldct", "-v", "qa", "--low", "/data/L067", "--key", "k1", "--out=/o/L067", "-p", "hu"]
    plain, pseudo = Pseudonymizer(False).command(argv), Pseudonymizer(True, "k1").command(argv)
    assert plain == "ldct -v qa --low /data/L067 --key *** --out=/o/L067 -p hu"
    assert pseudo == "ldct -v qa --low … --key *** --out=… -p …"
    assert Pseudonymizer(False).command(["ldct", "report", "--key=abc"]) == "ldct report --key=***"


@pytest.mark.slow
@pytest.mark.browser
def test_pdfs_of_a_pseudonymised_report_hold_no_identifier(pseudonymised_qa, tmp_path) -> None:
    from pipeline.report.browser import find_chromium
    from pipeline.report.config import ReportConfig
    from pipeline.report.pseudonym import Pseudonymizer
    from pipeline.report.render import build_report

    pypdf = pytest.importorskip("pypdf")
    if find_chromium() is None:
        pytest.skip("chromium not installed")
    cohort, denoised, out, _ = pseudonymised_qa
    ids = _identifiers(cohort, denoised) | {KEY}
    short = {s for s in ids if len(s) < SHORT}
    res = build_report(
        out / "evaluation",
        tmp_path / "report",
        ReportConfig(pdf=True, pseudonymize=True),
        pseudo=Pseudonymizer(True, KEY),
    )
    assert len(res.pdfs) == len(PATIENTS)
    for pdf in res.pdfs:
        reader = pypdf.PdfReader(str(pdf))
        meta = [f"{k} {v}" for k, v in (reader.metadata or {}).items()]
        text = [pg.extract_text() for pg in reader.pages]
        assert any("P-" in t for t in text)
        found = _leaks(short, ids - short, [], meta + text, [pdf.read_bytes()])
        assert not found, (pdf.name, found)
