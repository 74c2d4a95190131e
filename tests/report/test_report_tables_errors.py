"""Damaged evaluation folders give one LdctError naming the file, never a bare traceback."""

from __future__ import annotations

import pytest

from pipeline.errors import LdctError
from pipeline.report.tables import load_eval


@pytest.mark.parametrize("text", ["[]", '"text"', "3"])
def test_summary_not_an_object_names_the_file(tmp_path, text):
    summary = tmp_path / "summary.json"
    summary.write_text(text, encoding="utf-8")
    with pytest.raises(LdctError, match="must hold a JSON object") as info:
        load_eval(tmp_path)
    assert info.value.path == summary


def test_report_cli_on_list_summary_is_one_error_line(tmp_path, run_cli):
    (tmp_path / "summary.json").write_text("[]", encoding="utf-8")
    res = run_cli("report", str(tmp_path), "--out", str(tmp_path / "out"))
    assert res.exit_code != 0
    assert "Traceback" not in res.stderr + res.stdout
    assert "summary.json" in res.stderr + res.stdout


def test_summary_not_utf8_names_the_file(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_bytes(b'{"name": "\xe9"}')  # Latin-1 e-acute
    with pytest.raises(LdctError, match=r"cannot read summary\.json") as info:
        load_eval(tmp_path)
    assert info.value.path == summary
