"""Progress for logs: counts, rate and ETA per line, notes, interval, bar vs lines by terminal."""

from __future__ import annotations

import logging

import pytest

from pipeline.utils import progress as P


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_line_progress_rate_eta_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    bar = P.LineProgress(None, desc="denoise", total=400, unit="slice", every_s=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="ldct.progress"):
        clock.t += 10
        bar.update(20)  # 10 s < 30 s: no line yet
        assert caplog.records == []
        clock.t += 30
        bar.update(60)  # 80 slices in 40 s = 2 slices/s, 320 left -> ETA 160 s
        assert len(caplog.records) == 1
        line = caplog.records[0].getMessage()
        assert "80/400 slice (20 %)" in line and "2 slice/s" in line and "ETA 2m40s" in line
        bar.note("series 1/2 ok: a (80 x 512x512)")
        assert caplog.records[-1].getMessage().startswith("series 1/2 ok: a")
        bar.close()
        assert "done, 80 slice, 80 in 40s (2 slice/s)" in caplog.records[-1].getMessage()


def test_resumed_work_is_not_counted_in_the_rate(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    bar = P.LineProgress(None, desc="train", total=1000, unit="step", every_s=1, clock=clock)
    bar.skip_ahead(500)  # steps done before a resume
    clock.t += 10
    bar.update(10)
    status = bar.status()
    assert "510/1000 step" in status and "1 step/s" in status and "ETA 8m10s" in status
    with caplog.at_level(logging.INFO, logger="ldct.progress"):
        bar.close()  # the closing line separates earlier runs' steps from this run's rate
    assert "510 step (500 before this run), 10 in 10s (1 step/s)" in caplog.text


def test_format_duration() -> None:
    assert [P.format_duration(s) for s in (0, 59.4, 75, 4000)] == ["0s", "59s", "1m15s", "1h06m"]


def test_lines_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDCT_NO_PROGRESS", raising=False)
    monkeypatch.delenv("LDCT_PROGRESS", raising=False)
    monkeypatch.setattr(P.sys.stderr, "isatty", lambda: False, raising=False)
    assert isinstance(P.progress_bar(desc="x", total=3), P.LineProgress)
    monkeypatch.setenv("LDCT_NO_PROGRESS", "1")
    assert not isinstance(P.progress_bar(desc="x", total=3), P.LineProgress)
    assert list(P.progress(range(3), desc="x")) == [0, 1, 2]


def test_short_silent_work_logs_no_closing_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    bar = P.LineProgress(None, desc="scan", total=16, unit="file", every_s=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="ldct.progress"):
        clock.t += 0.5
        bar.update(16)
        bar.close()
    assert caplog.records == []  # a 0.5 s scan does not need a "done" line in the log
