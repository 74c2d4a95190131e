"""``ldct evaluate``: per-patient metrics, no-reference QA and artifact flags as tidy tables."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def named_baselines(paths: list[Path], name_of: object) -> dict[str, Path]:
    """``{name: path}`` for ``--baseline`` folders (name from the denoise manifest's model)."""
    from pipeline.errors import ConfigError

    out: dict[str, Path] = {}
    for p in paths:
        name = name_of(p)  # type: ignore[operator]
        if name in out:
            raise ConfigError(f"--baseline: two baselines named {name!r} ({out[name]}, {p})")
        out[name] = p
    return out


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the CLI."""
    app.command("evaluate")(evaluate)


def evaluate(
    low: Path = typer.Option(
        ..., "--low", help="Low-dose input: series folder, tree or dataset root."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder for the tables and summary.json."),
    full: Path | None = typer.Option(
        None,
        "--full",
        help="Full-dose reference (omit for no-reference QA). Same as --low: a "
        "dataset root (demo/mayo/tcia layout or manifest).",
    ),
    denoised: Path | None = typer.Option(
        None, "--denoised", help="Denoised series (e.g. an `ldct denoise` output tree)."
    ),
    profile: list[str] = typer.Option(
        [],
        "--profile",
        "-p",
        help="Metric profile (repeatable): redcnn, ldctbench-abdomen, ldctbench-chest, "
        "ldctbench-neuro, hu. Default: redcnn, ldctbench-abdomen, hu.",
    ),
    tile_stride: int | None = typer.Option(
        None,
        "--tile-stride",
        min=2,
        help="Inference tile stride (px) to test for seams/grids; "
        "read from the denoise manifest when it says.",
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Model checkpoint, for provenance (model hash, VGG weights)."
    ),
    ignore_frame: bool = typer.Option(
        False,
        "--ignore-frame-of-reference",
        help="Accept low/full pairs whose FrameOfReferenceUIDs differ (separately acquired "
        "series of one geometry); recorded in summary.json.",
    ),
    baseline: list[Path] = typer.Option(
        [],
        "--baseline",
        help="Output tree of a baseline denoiser (ldct denoise --model bm3d|nlm), repeatable: "
        "evaluated like --denoised and shown as extra columns.",
    ),
    pseudonymize: bool = typer.Option(
        False,
        "--pseudonymize",
        help="Keyed pseudonyms for patients and UIDs in every table, summary.json and log line.",
    ),
    key: str | None = typer.Option(
        None, "--key", envvar="LDCT_PSEUDONYM_KEY", help="Secret key for --pseudonymize."
    ),
) -> int:
    """Compare denoised vs low-dose vs full-dose per slice, patient and cohort.

    Writes per_slice, per_patient, cohort, tests, roi, qa, nps, artifact_slices and artifacts
    as CSV + Parquet and summary.json under OUT (docs/evaluation.md); with --pseudonymize the
    patients and UIDs in them are keyed pseudonyms (docs/evaluation.md, Privacy). Exit code 0
    when every paired patient was evaluated, 1 when some were skipped (listed in summary.json).
    """
    from pipeline.errors import ExitCode
    from pipeline.evaluate.profiles import DEFAULT_PROFILES
    from pipeline.evaluate.runner import baseline_name
    from pipeline.evaluate.runner import evaluate as run_evaluate
    from pipeline.report.pseudonym import Pseudonymizer, withhold_unmapped_logs

    pseudo = Pseudonymizer(pseudonymize, key)
    if pseudo.enabled:
        withhold_unmapped_logs()
    res = run_evaluate(
        low,
        out,
        full=full,
        denoised=denoised,
        profiles=tuple(profile) or DEFAULT_PROFILES,
        tile_stride_px=tile_stride,
        checkpoint=checkpoint,
        command=pseudo.command(["ldct", *sys.argv[1:]]),
        ignore_frame_of_reference=ignore_frame,
        baselines=named_baselines(baseline, baseline_name),
        pseudo=pseudo,
    )
    cohort = res.tables["cohort"]
    for row in cohort.itertuples():
        typer.echo(
            f"{row.comparison:17s} {row.profile:18s} {row.metric:8s} "
            f"{row.mean:9.4f} ± {row.sd:.4f} {row.unit} (n={row.n_patients} patients)"
        )
    for row in res.tables["artifacts"].itertuples():
        mark = "FLAG" if row.flagged else "ok  "
        typer.echo(f"artifacts {mark} {row.patient} {row.residual}: {row.evidence}")
    typer.echo(f"wrote {len(res.tables)} tables + summary.json to {res.out}")
    if res.problems:
        for p in res.problems:
            typer.echo(f"problem: {p}", err=True)
        return ExitCode.PARTIAL_FAILURE
    return ExitCode.OK
