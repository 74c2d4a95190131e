"""``ldct inspect``: what CT series are under these paths, and which files are not used (why)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from pipeline.io.discover import ScanResult, SeriesRecord


def register(app: typer.Typer) -> None:
    """Add ``inspect`` to the CLI."""
    app.command("inspect")(inspect)


def inspect(
    paths: list[Path] = typer.Argument(..., help="DICOM files or folders (searched recursively)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document for machines."),
    headers_only: bool = typer.Option(
        False, "--headers-only", help="Do not decode pixels (no HU range, faster)."
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Decoder processes."),
    max_skipped: int = typer.Option(
        50, "--max-skipped", min=0, help="List at most this many skipped files (text output)."
    ),
) -> int:
    """List studies and CT series (patient, description, slices, size, spacing, HU range,
    transfer syntax, warnings, suspect-input flags: lossy compression, missing Type 1
    attributes, invalid UIDs) and every skipped file with its reason.

    Exit code 0 when at least one CT series was found, 3 when nothing readable was found.
    """
    from pipeline.errors import DicomError
    from pipeline.io.discover import scan
    from pipeline.io.tags import quiet
    from pipeline.utils.progress import progress

    result = scan(paths)
    # series warnings are printed in the table below; don't repeat them as log lines
    logging.getLogger("pipeline.io.read").setLevel(logging.WARNING)
    with quiet():  # mute pydicom once for all series (a mute per tag look-up cost ~30 %)
        rows = [
            _describe(rec, headers_only, workers)
            for rec in progress(result.series, desc="reading series", unit="series")
        ]
    lost = [
        {
            "study_uid": ls.study_uid,
            "series_uid": ls.series_uid,
            "folder": str(ls.folder),
            "reason": ls.reason,
            "files": [{"path": str(s.path), "reason": s.reason} for s in ls.files],
        }
        for ls in result.lost_series
    ]
    if as_json:
        doc = {
            "n_files": result.n_files,
            "series": rows,
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in result.skipped],
            "lost_series": lost,
        }
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        _print_text(result, rows, max_skipped)
    if not any(r["error"] is None for r in rows):
        where = ", ".join(str(p) for p in paths)
        raise DicomError(
            f"nothing readable: no CT series could be read under {where} "
            f"({result.n_files} file(s) examined, {len(result.skipped)} skipped)"
        )
    return 0


def _describe(rec: SeriesRecord, headers_only: bool, workers: int | None) -> dict[str, Any]:
    from pipeline.errors import LdctError
    from pipeline.io.geometry import sort_slices
    from pipeline.io.read import read_series
    from pipeline.io.suspect import is_lossy, record_flags
    from pipeline.io.tags import value

    first = rec.files[0]
    row: dict[str, Any] = {
        "patient_id": rec.patient_id,
        "patient_name": rec.patient_name,
        "study_uid": rec.study_uid,
        "study_description": str(value(first.header, "StudyDescription") or ""),
        "series_uid": rec.series_uid,
        "part": rec.part,
        "series_number": rec.series_number,
        "description": rec.description,
        "slices": rec.n_slices,
        "rows": first.rows,
        "columns": first.columns,
        "spacing_mm": None,
        "hu_min": None,
        "hu_max": None,
        "padding_voxels": None,
        "transfer_syntaxes": [_ts_name(t) for t in rec.transfer_syntaxes],
        "flags": record_flags(rec.files),
        "lossy": False,
        "warnings": list(rec.warnings),
        "skipped_files": [],
        # files of this series the scan saw but could not use (the series is incomplete)
        "lost_files": [{"path": str(s.path), "reason": s.reason} for s in rec.lost],
        "error": "; ".join(rec.errors) if rec.errors else None,
        "folder": str(first.path.parent),
    }
    row["lossy"] = is_lossy(row["flags"])
    if rec.errors:
        return row
    try:
        if headers_only:
            geom = sort_slices(rec.frames)
            row["spacing_mm"] = list(geom.spacing_mm)
            row["warnings"] += geom.warnings
            return row
        vol = read_series(rec, workers)
    except LdctError as exc:
        row["error"] = str(exc)
        return row
    tissue = vol.hu[~vol.padding_mask] if vol.padding_mask is not None else vol.hu
    row["spacing_mm"] = [round(v, 4) for v in vol.spacing_mm]
    row["slices"] = vol.shape[0]
    if tissue.size:
        row["hu_min"], row["hu_max"] = float(tissue.min()), float(tissue.max())
    row["padding_voxels"] = int(vol.padding_mask.sum()) if vol.padding_mask is not None else 0
    row["warnings"] = list(vol.warnings)
    row["skipped_files"] = vol.meta.get("skipped_files", [])
    return row


def _ts_name(uid: str) -> str:
    from pydicom.uid import UID

    return UID(uid).name or uid


def _print_text(result: ScanResult, rows: list[dict[str, Any]], max_skipped: int) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from pipeline.utils.text import printable

    console = Console(width=None if _is_tty() else 160, soft_wrap=False)
    studies: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        studies.setdefault(row["study_uid"], []).append(row)
    console.print(
        f"{result.n_files} file(s) examined: {len(rows)} CT series in {len(studies)} "
        f"stud{'y' if len(studies) == 1 else 'ies'}, {len(result.skipped)} file(s) skipped",
        markup=False,
        highlight=False,
    )
    n = 0
    for study_uid, srows in studies.items():
        head = srows[0]
        table = Table(
            title=Text(
                printable(
                    f"Study {study_uid}  patient {head['patient_id'] or '?'} "
                    f"({head['patient_name'] or 'no name'})  {head['study_description']}"
                )
            ),
            title_justify="left",
        )
        for col in ("#", "series", "description", "slices", "size", "spacing z/y/x mm",
                    "HU range", "transfer syntax"):  # fmt: skip
            table.add_column(col, overflow="fold")
        notes: list[str] = []
        for row in srows:
            n += 1
            spacing = "/".join(f"{v:.3g}" for v in row["spacing_mm"]) if row["spacing_mm"] else "-"
            hu = f"{row['hu_min']:.0f} .. {row['hu_max']:.0f}" if row["hu_min"] is not None else "-"
            number = row["series_number"] if row["series_number"] is not None else ""
            part = f" part {row['part']}" if row["part"] else ""
            table.add_row(
                str(n),
                f"{number}{part}",
                Text(printable(row["description"])),
                str(row["slices"]),
                f"{row['rows']}x{row['columns']}",
                spacing,
                hu,
                ", ".join(row["transfer_syntaxes"]),
            )
            if row["error"]:
                notes.append(f"  [{n}] ERROR: {row['error']}")
            notes += [f"  [{n}] suspect input: {f}" for f in row["flags"]]
            if row["lost_files"]:
                notes.append(
                    f"  [{n}] INCOMPLETE: {len(row['lost_files'])} file(s) of this series not "
                    "usable (denoise refuses it unless allow_incomplete):"
                )
                notes += [f"  [{n}]   {f['path']}: {f['reason']}" for f in row["lost_files"]]
            notes += [f"  [{n}] warning: {w}" for w in row["warnings"]]
            notes.append(f"  [{n}] {row['series_uid']} in {row['folder']}")
        if len(srows) <= RICH_TABLE_MAX_ROWS:
            console.print(table)
        else:  # rich lays out ~5 ms per row: thousands of one-slice series took minutes
            sys.stdout.write(_plain_table(table) + "\n")
        sys.stdout.write("".join(printable(line) + "\n" for line in notes))
        sys.stdout.flush()
    for ls in result.lost_series:
        console.print(
            printable(f"LOST series {ls.label} in {ls.folder}: {ls.reason}"),
            markup=False,
            highlight=False,
        )
    if result.skipped:
        console.print(f"Skipped {len(result.skipped)} file(s):")
        for s in result.skipped[:max_skipped]:
            console.print(printable(f"  {s.path}: {s.reason}"), markup=False, highlight=False)
        if len(result.skipped) > max_skipped:
            counts: dict[str, int] = {}
            for s in result.skipped[max_skipped:]:
                counts[s.reason] = counts.get(s.reason, 0) + 1
            console.print(f"  ... and {len(result.skipped) - max_skipped} more:")
            for reason, count in sorted(counts.items(), key=lambda kv: -kv[1]):
                console.print(printable(f"    {count} x {reason}"), markup=False, highlight=False)


#: studies with more series rows than this are printed as a plain aligned table (same columns)
RICH_TABLE_MAX_ROWS = 200


def _plain_table(table: Any) -> str:
    """A rich Table as plain aligned text: title, header, one line per row (fast for many)."""
    from pipeline.utils.text import printable

    cols = [
        [str(c.header)] + [str(getattr(v, "plain", v)) for v in c._cells] for c in table.columns
    ]
    widths = [max(len(v) for v in col) for col in cols]
    lines = [str(getattr(table.title, "plain", table.title or ""))]
    for i in range(len(cols[0])):
        lines.append("  ".join(col[i].ljust(w) for col, w in zip(cols, widths, strict=True)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(printable(line.rstrip()) for line in lines)


def _is_tty() -> bool:
    import sys

    return sys.stdout.isatty()
