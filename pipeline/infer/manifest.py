"""The denoising manifest: one row per input series (CSV + JSON), written per shard and merged.

Each process writes ``OUT/manifest.parts/part-<i>-of-<n>.json`` (atomically) and then merges every
part present into ``OUT/manifest.json`` and ``OUT/manifest.csv``. The process that finishes last
therefore leaves a complete manifest; ``ldct denoise-merge OUT`` redoes the merge at any time.
Rows of the same series from several runs are deduplicated, keeping the most recent one. The row
type (:class:`pipeline.records.ManifestRow`) lives in the core, where ``ldct evaluate`` reads it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from pipeline.errors import LdctError
from pipeline.records import ManifestRow, Status
from pipeline.utils.files import atomic_write_text

PARTS_DIR = "manifest.parts"
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"

__all__ = [
    "COLUMNS", "MANIFEST_CSV", "MANIFEST_JSON", "ManifestRow", "Status", "merge_parts", "part_path",
    "rows_to_csv", "write_part",
]  # fmt: skip

COLUMNS = [f.name for f in fields(ManifestRow)]


def rows_to_csv(rows: list[ManifestRow]) -> str:
    """CSV text with a header of :data:`COLUMNS`."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    return buf.getvalue()


def _rows_from_json(path: Path) -> list[ManifestRow]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [ManifestRow(**{k: v for k, v in r.items() if k in COLUMNS}) for r in data["rows"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LdctError(f"unreadable manifest part ({exc})", path=path) from exc


def part_path(out_dir: Path, shard_index: int, shard_count: int) -> Path:
    return out_dir / PARTS_DIR / f"part-{shard_index}-of-{shard_count}.json"


def write_part(
    out_dir: Path, rows: list[ManifestRow], shard_index: int, shard_count: int, run: dict[str, Any]
) -> Path:
    """Write this process's rows (and run info: model, config, rules) atomically."""
    path = part_path(out_dir, shard_index, shard_count)
    payload = {"run": run, "rows": [asdict(r) for r in rows]}
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=False))
    return path


def merge_parts(out_dir: Path) -> list[ManifestRow]:
    """Merge every part under ``OUT`` into ``manifest.json``/``manifest.csv``; returns the rows."""
    parts = sorted((out_dir / PARTS_DIR).glob("part-*-of-*.json"))
    if not parts:
        raise LdctError(f"no manifest parts under {out_dir / PARTS_DIR}")
    latest: dict[str, ManifestRow] = {}
    runs: list[dict[str, Any]] = []
    for p in parts:
        runs.append(json.loads(p.read_text(encoding="utf-8")).get("run", {}))
        for row in _rows_from_json(p):
            old = latest.get(row.series_key)
            if old is None or row.finished_at >= old.finished_at:
                latest[row.series_key] = row
    rows = sorted(latest.values(), key=lambda r: (r.input_path, r.series_key))
    summary = {s.value: sum(r.status == s.value for r in rows) for s in Status}
    payload = {
        "summary": summary,
        "parts": [p.name for p in parts],
        "runs": runs,
        "rows": [asdict(r) for r in rows],
    }
    atomic_write_text(out_dir / MANIFEST_JSON, json.dumps(payload, indent=1))
    atomic_write_text(out_dir / MANIFEST_CSV, rows_to_csv(rows))
    return rows
