"""``--pdf`` on a fresh output folder: A4 pages with the patient and page number in the header."""

from __future__ import annotations

import pytest

from pipeline.report.browser import find_chromium
from pipeline.report.config import ReportConfig
from pipeline.report.render import build_report

A4_PT = (595.3, 841.9)


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed")
def test_pdf_on_fresh_folder_is_a4_with_patient_and_page_headers(evaluated_cohort, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    out = tmp_path / "fresh" / "report"  # neither folder exists yet
    res = build_report(evaluated_cohort.evaluation, out, ReportConfig(pdf=True))
    assert len(res.pdfs) == len(res.pages) == 2
    for shown, page in res.pages.items():
        pdf = out / "pdf" / page.with_suffix(".pdf").name
        assert pdf in res.pdfs and pdf.stat().st_size > 10_000
        reader = pypdf.PdfReader(str(pdf))
        n = len(reader.pages)
        assert n >= 2
        for i, pg in enumerate(reader.pages, start=1):
            w, h = float(pg.mediabox.width), float(pg.mediabox.height)
            assert (w, h) == pytest.approx(A4_PT, abs=1.0)
            text = pg.extract_text()
            assert f"patient {shown}" in text, (pdf.name, i)
            assert f"page {i} of {n}" in text, (pdf.name, i)
            assert "file://" not in text  # no browser default header/footer


def test_pdf_error_names_the_output_and_hides_dbus_noise() -> None:
    from pipeline.report.browser import _reason

    stderr = (
        "[1:2:ERROR:bus.cc(407)] Failed to connect to the bus: Could not parse server address\n"
        "[1:3:ERROR:print_to_pdf.cc] Failed to write file\n"
    )
    assert _reason(stderr) == "[1:3:ERROR:print_to_pdf.cc] Failed to write file"
    assert _reason("[x] D-Bus not available\n") == "no error message from chromium"
