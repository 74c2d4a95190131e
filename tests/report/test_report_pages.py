"""End-to-end report on a tiny evaluated cohort: verdicts, numbers == tables, privacy, browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from pipeline.report.browser import find_chromium, screenshot
from pipeline.report.config import ReportConfig
from pipeline.report.render import build_report


class _Cells(HTMLParser):
    """Collects data-* attributes of the metrics table cells and all <img> sources."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.images: list[str] = []
        self._row: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-metric" in a:
            self._row = {"profile": a["data-profile"], "metric": a["data-metric"]}
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None and "data-key" in a:
            self._row[a["data-key"]] = a["data-value"]
        elif tag == "img":
            self.images.append(a.get("src", ""))


@pytest.fixture(scope="module")
def report(evaluated_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(evaluated_cohort.evaluation, out, ReportConfig())


def test_index_and_pages_written(report, evaluated_cohort):
    assert report.index.is_file()
    assert set(report.pages) == {p.name for p in evaluated_cohort.cohort.iterdir() if p.is_dir()}
    index = report.index.read_text()
    for name, page in report.pages.items():
        assert f'href="patients/{page.name}"' in index
        assert name in index
    assert (report.out_dir / "tables" / "verdicts.csv").is_file()
    assert (report.out_dir / "report_config.yaml").is_file()


def test_grid_patient_fails_with_evidence(report, evaluated_cohort):
    grid = evaluated_cohort.grid_patient
    assert report.verdicts[grid] == "fail"
    html = report.pages[grid].read_text()
    assert 'data-flagged="true"' in html
    assert "period 2 px" in html
    assert 'alt="residual spectrum denoised_minus_low"' in html
    clean = next(p for p in report.pages if p != grid)
    assert 'data-flagged="true"' not in report.pages[clean].read_text()


def test_numbers_on_page_equal_tables(report, evaluated_cohort):
    per_patient = pd.read_parquet(evaluated_cohort.evaluation / "per_patient.parquet")
    for patient, page in report.pages.items():
        parser = _Cells()
        parser.feed(page.read_text())
        assert parser.rows, "metrics table missing"
        for row in parser.rows:
            for key, comparison in (
                ("low_mean", "low_vs_full"),
                ("denoised_mean", "denoised_vs_full"),
            ):
                expected = per_patient[
                    (per_patient["patient"] == patient)
                    & (per_patient["profile"] == row["profile"])
                    & (per_patient["metric"] == row["metric"])
                    & (per_patient["comparison"] == comparison)
                ]["mean"]
                assert float(row[key]) == pytest.approx(float(expected.iloc[0]), rel=1e-12)
        # images embedded (no external files, no network)
        assert parser.images and all(
            src.startswith("data:image/png;base64,") for src in parser.images
        )
        assert not re.search(r'(src|href)="https?://', page.read_text())


def test_pseudonymize_leaves_no_identifier(evaluated_cohort, tmp_path):
    out = tmp_path / "pseudo"
    result = build_report(
        evaluated_cohort.evaluation, out, ReportConfig(pseudonymize=True), key="secret"
    )
    assert all(name.startswith("P-") for name in result.pages)
    for page in result.pages.values():  # the images found through the unmapped records
        assert "Images unavailable" not in page.read_text(encoding="utf-8")
    needles = {s for s in evaluated_cohort.identifiers if s} | {
        p.name for p in evaluated_cohort.cohort.iterdir() if p.is_dir()
    }
    assert needles
    for f in out.rglob("*"):
        assert not any(n in f.name for n in needles), f
        if f.is_file():
            text = f.read_text(errors="replace")
            for n in needles:
                assert n not in text, f"{n!r} found in {f}"


def test_pseudonymize_an_older_evaluation_re_pairs_with_pseudonyms(evaluated_cohort, tmp_path):
    """A summary.json without series folders is re-paired; the pairing names its items (and
    its log lines) by pseudonym, so the pages find their images and name no patient."""
    import json
    import shutil

    old = tmp_path / "old-eval"
    shutil.copytree(evaluated_cohort.evaluation, old)
    summary = json.loads((old / "summary.json").read_text())
    for info in summary["patients"]:
        del info["series_folders"]
    (old / "summary.json").write_text(json.dumps(summary))
    result = build_report(old, tmp_path / "r", ReportConfig(pseudonymize=True), key="secret")
    assert len(result.pages) == 2 and all(name.startswith("P-") for name in result.pages)
    for page in result.pages.values():
        html = page.read_text(encoding="utf-8")
        assert "Images unavailable" not in html
        assert not any(n in html for n in evaluated_cohort.identifiers if n)


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed")
def test_pages_render_in_headless_browser(report, tmp_path):
    from PIL import Image

    for page in [report.index, *report.pages.values()]:
        png = tmp_path / f"{page.stem}.png"
        proc = screenshot(page, png, size=(1200, 1600))
        assert "Uncaught" not in proc.stderr and "ERROR:CONSOLE" not in proc.stderr
        img = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
        assert img.std() > 10.0, f"{page.name}: screenshot looks blank"
        assert (img < 128).mean() > 0.01  # text and images drawn, not an empty page


class _Svgs(HTMLParser):
    """Slice viewers: <figure class=slice> with their <svg viewBox>, <rect>, <circle>."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.captions: list[str] = []
        self._cap = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and "slice" in (a.get("class") or ""):
            self.figures.append({"role": a.get("data-role"), "rects": 0, "circles": 0})
        elif tag == "svg" and self.figures:
            self.figures[-1]["viewBox"] = a.get("viewbox")
        elif tag == "rect" and self.figures:
            self.figures[-1]["rects"] += 1
        elif tag == "circle" and self.figures:
            self.figures[-1]["circles"] += 1
        elif tag == "figcaption":
            self._cap = True

    def handle_data(self, data):
        if self._cap:
            self.captions.append(data)
            self._cap = False


def test_slices_at_native_resolution_named_by_z_with_rois(report, evaluated_cohort):
    """Full-resolution low/denoised/full side by side, ROIs drawn, slices named by z/Instance."""
    roi = pd.read_csv(evaluated_cohort.evaluation / "roi.csv")
    for shown, page in report.pages.items():
        p = _Svgs()
        p.feed(page.read_text())
        roles = [f["role"] for f in p.figures]
        assert roles[:3] == ["low", "denoised", "full"]
        assert all(f["viewBox"] == "0 0 96 96" for f in p.figures)  # native 96x96, no resampling
        assert any(f["rects"] > 0 for f in p.figures) == (len(roi[roi.patient == shown]) > 0)
        assert all(re.search(r"z = -?\d+\.\d mm, InstanceNumber \d+", c) for c in p.captions)
    idx = _Svgs()
    idx.feed(report.index.read_text())
    assert [f["role"] for f in idx.figures] == ["low", "denoised", "full"] * len(report.pages)
