"""``ldct dataset check|split|pairs``: is a paired dataset sound, and how is it split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pipeline.errors import ExitCode

if TYPE_CHECKING:
    from pipeline.data.quality import DatasetReport

dataset_app = typer.Typer(
    help="Paired low/full-dose datasets: check soundness, make patient-level splits.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``dataset`` command group."""
    app.add_typer(dataset_app, name="dataset")


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None or v != v else format(v, spec)


def _print_report(report: DatasetReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title=f"dataset {report.source}")
    for col in (
        "pair",
        "layout",
        "slices",
        "size",
        "spacing mm (z,y,x)",
        "HU full p1..p99",
        "HU low min..max",
        "noise low/full HU",
        "added",
        "status",
    ):
        table.add_column(col)
    for p in report.pairs:
        table.add_row(
            p.name,
            p.layout,
            str(p.n_slices or "-"),
            "x".join(str(v) for v in p.shape[1:]) if p.shape else "-",
            ",".join(f"{v:.2f}" for v in p.spacing_mm) if p.spacing_mm else "-",
            f"{_fmt(p.hu_full[1], '.0f')}..{_fmt(p.hu_full[2], '.0f')}" if p.hu_full else "-",
            f"{_fmt(p.hu_low[0], '.0f')}..{_fmt(p.hu_low[3], '.0f')}" if p.hu_low else "-",
            f"{_fmt(p.noise_low_hu)}/{_fmt(p.noise_full_hu)}",
            _fmt(p.noise_added_hu),
            "ok" if p.ok else f"{len(p.problems)} problem(s)",
        )
    console.print(table)
    for msg in report.problems:
        console.print(f"PROBLEM: {msg}", markup=False)
    for p in report.pairs:
        for msg in p.problems:
            console.print(f"PROBLEM {p.name}: {msg}", markup=False)
        for msg in p.warnings:
            console.print(f"warning {p.name}: {msg}", markup=False)
    verdict = "sound" if report.ok else f"{report.n_problems} problem(s)"
    console.print(f"{len(report.pairs)} pair(s), {verdict}", markup=False)


@dataset_app.command("check")
def check(
    root: Path = typer.Argument(..., help="Dataset root (any supported layout) or pair manifest."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
    tol_mm: float = typer.Option(0.1, "--tol-mm", help="Slice/origin position tolerance (mm)."),
    ignore_frame: bool = typer.Option(
        False, "--ignore-frame-of-reference", help="Accept pairs whose FrameOfReferenceUIDs differ."
    ),
) -> int:
    """Summarise every pair (slices, spacing, HU ranges, noise) and list every problem.

    Exit code 0: sound; 1: problems found (listed); 3: the root does not exist.
    """
    import functools

    from pipeline.data.pairs import load_pair
    from pipeline.data.quality import check_dataset
    from pipeline.utils.files import atomic_write_text

    loader = functools.partial(
        load_pair, tol_mm=tol_mm, require_same_frame_of_reference=not ignore_frame
    )
    report = check_dataset(root, loader=loader)
    _print_report(report)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.as_dict(), indent=2))
    return ExitCode.OK if report.ok else ExitCode.PARTIAL_FAILURE


def _names(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


@dataset_app.command("split")
def split(
    root: Path = typer.Argument(..., help="Dataset root or pair manifest."),
    out: Path = typer.Option(..., "--out", "-o", help="Split manifest to write (.yaml or .json)."),
    val: float = typer.Option(0.15, "--val", help="Validation fraction of patients."),
    test: float = typer.Option(0.15, "--test", help="Test fraction of patients."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the split."),
    train_list: str | None = typer.Option(None, "--train-patients", help="Explicit: P1,P2,..."),
    val_list: str | None = typer.Option(None, "--val-patients", help="Explicit validation list."),
    test_list: str | None = typer.Option(None, "--test-patients", help="Explicit test list."),
) -> int:
    """Write a seeded (or explicit) patient-level train/val/test split, leak-checked."""
    from pipeline.data.pairs import discover_pairs
    from pipeline.data.splits import assign, explicit_splits, make_splits, save_splits

    pairs = discover_pairs(root)
    if train_list or val_list or test_list:
        splits = explicit_splits(_names(train_list), _names(val_list), _names(test_list))
    else:
        splits = make_splits(
            [p.patient for p in pairs], val_fraction=val, test_fraction=test, seed=seed
        )
    assign(pairs, splits)  # every patient in exactly one split, no unknown names
    save_splits(splits, out, pairs)
    for name, members in splits.as_dict().items():
        typer.echo(f"{name}: {len(members)} patient(s): {', '.join(members) or '-'}")
    typer.echo(f"wrote {out}")
    return ExitCode.OK


@dataset_app.command("pairs")
def pairs_cmd(
    root: Path = typer.Argument(..., help="Dataset root or pair manifest."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write a manifest (.csv/.yaml)."),
) -> int:
    """List the pairs found under ROOT (layout, patient, series paths) without reading pixels."""
    from pipeline.data.layouts import scan_pairs
    from pipeline.data.manifest import write_manifest

    found = scan_pairs(root)
    for p in found.pairs:
        typer.echo(f"{p.name}\t{p.layout}\tdose={p.dose}\tlow={p.low}\tfull={p.full}")
    for msg in found.problems:
        typer.echo(f"PROBLEM: {msg}", err=True)
    if out is not None and found.pairs:
        write_manifest(found.pairs, out)
        typer.echo(f"wrote {out}")
    if not found.pairs:
        typer.echo(f"no pairs found ({found.hint})", err=True)
        return ExitCode.INPUT
    return ExitCode.PARTIAL_FAILURE if found.problems else ExitCode.OK
