"""Training metrics log: JSON lines + CSV (one row per record) and optional TensorBoard.

Files live in the run's output folder: ``metrics.jsonl`` (every record, any keys), and
``metrics.csv`` (columns fixed by the first record of each kind; later unknown keys go to the
JSON file only). On resume, records after the resumed step are dropped first, so the logs of an
interrupted+resumed run read like those of an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

from pipeline.utils.files import atomic_write_text

log = logging.getLogger(__name__)


class MetricsLog:
    """Append-only metrics log of one run (rank 0 only)."""

    def __init__(self, out_dir: str | Path, *, tensorboard: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.out_dir / "metrics.jsonl"
        self.csv = self.out_dir / "metrics.csv"
        self._tb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step`` greater than ``step`` (used when resuming).

        Records that cannot be parsed (the line being appended when the run was killed) are
        dropped too, with a warning, so a resume after a kill does not fail on a torn line.
        """
        if self.jsonl.exists():
            lines = [x for x in self.jsonl.read_text(encoding="utf-8").splitlines() if x.strip()]
            steps = [_jsonl_step(line) for line in lines]
            keep = [
                line for line, s in zip(lines, steps, strict=True) if s is not None and s <= step
            ]
            _warn_unreadable(self.jsonl, steps.count(None))
            atomic_write_text(self.jsonl, "".join(f"{line}\n" for line in keep))
        if self.csv.exists():
            with open(self.csv, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            if rows:
                header, body = rows[0], rows[1:]
                si = header.index("step") if "step" in header else None
                steps = [None if si is None else _csv_step(r, si) for r in body]
                kept = [
                    r
                    for r, s in zip(body, steps, strict=True)
                    if si is None or (s is not None and s <= step)
                ]
                _warn_unreadable(self.csv, 0 if si is None else steps.count(None))
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerows([header, *kept])
                atomic_write_text(self.csv, buf.getvalue())

    def write(self, kind: str, step: int, values: dict[str, float]) -> None:
        """Append one record (``kind`` e.g. ``train`` or ``val``) to all sinks."""
        record: dict[str, Any] = {"kind": kind, "step": step}
        record.update({k: _clean(v) for k, v in values.items()})
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        self._write_csv(record)
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float) and math.isfinite(float(v)):
                    self._tb.add_scalar(f"{kind}/{k}", float(v), step)

    def _write_csv(self, record: dict[str, Any]) -> None:
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        if new:
            header = ["kind", "step", *sorted(k for k in record if k not in ("kind", "step"))]
        else:
            with open(self.csv, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh))
            missing = [k for k in record if k not in header]
            if missing:  # widen the table: rewrite with the new columns (small files)
                with open(self.csv, newline="", encoding="utf-8") as fh:
                    rows = list(csv.DictReader(fh))
                header = header + sorted(missing)
                with open(self.csv, "w", newline="", encoding="utf-8") as fh:
                    w = csv.DictWriter(fh, fieldnames=header)
                    w.writeheader()
                    w.writerows(rows)
        with open(self.csv, "a", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            if new:
                w.writeheader()
            w.writerow({k: record.get(k, "") for k in header})

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _jsonl_step(line: str) -> int | None:
    """The ``step`` of one JSON-lines record (0 if absent); None if the line is not a record."""
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, TypeError, AttributeError):  # torn JSON, non-record, non-numeric step
        return None


def _csv_step(row: list[str], index: int) -> int | None:
    """The step of one CSV row; None for a torn or malformed row."""
    try:
        return int(float(row[index]))
    except (IndexError, ValueError):
        return None


def _warn_unreadable(path: Path, n: int) -> None:
    if n:
        log.warning("%s: dropped %d unreadable record(s) (torn by an interrupted run?)", path, n)


def _clean(v: Any) -> Any:
    """JSON-safe scalar (NaN/inf become strings so the file stays valid JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file."""
    p = Path(path)
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
