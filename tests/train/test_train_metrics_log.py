"""MetricsLog.truncate_after on resume: later records go, torn records go with a warning."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from pipeline.train.metrics_log import MetricsLog, read_jsonl


def _log_with_steps(out: Path, steps: range) -> MetricsLog:
    mlog = MetricsLog(out, tensorboard=False)
    for s in steps:
        mlog.write("train", s, {"loss": 1.0 / (s + 1)})
    return mlog


def _csv_steps(path: Path) -> list[int]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_truncate_keeps_records_up_to_step(tmp_path: Path) -> None:
    mlog = _log_with_steps(tmp_path, range(1, 7))
    mlog.truncate_after(4)
    assert [r["step"] for r in read_jsonl(mlog.jsonl)] == [1, 2, 3, 4]
    assert _csv_steps(mlog.csv) == [1, 2, 3, 4]


def test_torn_last_records_are_dropped_with_a_warning(tmp_path: Path, caplog) -> None:
    mlog = _log_with_steps(tmp_path, range(1, 4))
    with open(mlog.jsonl, "a", encoding="utf-8") as fh:
        fh.write('{"kind": "train", "st')  # the write a SIGKILL interrupted
    with open(mlog.csv, "a", encoding="utf-8") as fh:
        fh.write("tra")
    with caplog.at_level(logging.WARNING):
        mlog.truncate_after(2)
    assert [r["step"] for r in read_jsonl(mlog.jsonl)] == [1, 2]
    assert _csv_steps(mlog.csv) == [1, 2]
    assert caplog.text.count("dropped 1 unreadable record(s)") == 2
