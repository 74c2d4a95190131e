"""``ldct demo``: the whole pipeline on built-in demo data (what ``make demo`` runs).

It chains the real commands — ``demo-data`` -> ``denoise`` (bundled model) -> ``qa``
(evaluate + report) — through the same entry point a user calls, then prints where everything
is and the headline numbers read back from the evaluation tables.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import typer

from pipeline.errors import ExitCode, LdctError


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the CLI."""
    app.command("demo")(demo)


def _step(title: str, args: list[str]) -> float:
    from pipeline.cli.main import main

    typer.secho(f"\n== {title}: ldct {' '.join(args)}", bold=True, err=True)
    t0 = time.perf_counter()
    code = main(args)
    if code not in (ExitCode.OK,):
        raise LdctError(f"demo step '{title}' failed with exit code {code}")
    return time.perf_counter() - t0


def headline(eval_dir: Path) -> list[str]:
    """Cohort numbers for the terminal, read from the evaluation's tables."""
    import pandas as pd

    lines = []
    cohort = pd.read_csv(eval_dir / "cohort.csv")
    for profile, metric, unit in (("redcnn", "psnr", "dB"), ("redcnn", "ssim", "")):
        rows = cohort[(cohort["profile"] == profile) & (cohort["metric"] == metric)]
        by = {r["comparison"]: r for _, r in rows.iterrows()}
        if {"low_vs_full", "denoised_vs_full"} <= set(by):
            lo, de = by["low_vs_full"]["mean"], by["denoised_vs_full"]["mean"]
            line = (
                f"{metric.upper()} vs full dose ({profile}): low dose {lo:.3f} {unit} -> "
                f"denoised {de:.3f} {unit} ({de - lo:+.3f})"
            )
            if "bm3d_vs_full" in by:  # the classical baseline on the same slices
                bm = by["bm3d_vs_full"]["mean"]
                line += f"; BM3D {bm:.3f} {unit} ({bm - lo:+.3f})"
            lines.append(line)
    qa = pd.read_csv(eval_dir / "qa.csv")
    den = qa[qa["role"] == "denoised"]
    if len(den):
        lines.append(
            "noise SD reduction vs low dose (TG-233, noise-only images): "
            f"{100 * (1 - den['sd_ratio_vs_low'].mean()):.0f} % (mean over patients); "
            f"ROI HU bias {den['hu_bias_vs_low_hu'].mean():+.2f} HU"
        )
        if "sd_ratio_vs_full" in den and den["sd_ratio_vs_full"].notna().any():
            lines.append(
                "vs the full-dose target: noise SD x"
                f"{den['sd_ratio_vs_full'].mean():.2f}, NPS mean frequency x"
                f"{den['nps_mean_freq_ratio_vs_full'].mean():.2f}, TTF50 x"
                f"{den['ttf50_ratio_vs_full'].mean():.2f}; d' NPWE x"
                f"{den['dprime_npwe_ratio_vs_low'].mean():.2f} vs low dose"
            )
    summary = json.loads((eval_dir / "summary.json").read_text())
    flagged = [a["patient"] for a in summary.get("artifacts", []) if a.get("flagged")]
    lines.append(f"grid/seam artifacts flagged: {', '.join(sorted(set(flagged))) or 'none'}")
    return lines


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Folder for all outputs."),
    patients: int = typer.Option(4, "--patients", min=2, help="Phantom patients."),
    slices: int = typer.Option(16, "--slices", min=1, help="Slices per patient."),
    size: int = typer.Option(256, "--size", min=64, help="Image matrix."),
    seed: int = typer.Option(0, "--seed", help="Seed of the demo cohort."),
    model: str | None = typer.Option(None, "--model", help="Checkpoint (default: bundled)."),
) -> int:
    """Generate the demo cohort, denoise its quarter-dose series, evaluate, write QA reports."""
    t0 = time.perf_counter()
    cohort, denoised, qa = out / "cohort", out / "denoised", out / "qa"
    if (cohort / "cohort.json").is_file():
        typer.secho(f"\n== reusing the demo cohort in {cohort}", bold=True, err=True)
    else:
        _step(
            "1/3 demo cohort (phantoms + simulated quarter dose)",
            ["demo-data", str(cohort), "--patients", str(patients), "--slices", str(slices),
             "--size", str(size), "--seed", str(seed)],
        )  # fmt: skip
    lows = sorted(p / "quarter_dose" for p in cohort.iterdir() if (p / "quarter_dose").is_dir())
    den_args = ["denoise", *map(str, lows), "--out", str(denoised)]
    if model:
        den_args += ["--model", model]
    _step("2/3 batch denoising (derived DICOM series)", den_args)
    baseline: list[str] = []
    if importlib.util.find_spec("bm3d") is not None:  # optional extra (non-commercial licence)
        bm3d_out = out / "bm3d"
        _step(
            "2b/3 BM3D baseline on the same series (optional bm3d extra is installed)",
            ["denoise", *map(str, lows), "--out", str(bm3d_out), "--model", "bm3d"],
        )
        baseline = ["--baseline", str(bm3d_out)]
    _step(
        "3/3 evaluation + QA report",
        ["qa", "--full", str(cohort), "--low", str(cohort), "--denoised", str(denoised),
         "--out", str(qa), *baseline],
    )  # fmt: skip
    typer.echo("")
    typer.secho(f"Demo finished in {time.perf_counter() - t0:.0f} s.", bold=True)
    typer.echo(f"  demo cohort (DICOM):      {cohort}")
    typer.echo(f"  denoised series (DICOM):  {denoised}  (manifest: {denoised / 'manifest.csv'})")
    typer.echo(f"  evaluation tables:        {qa / 'evaluation'}")
    typer.echo(f"  QA report (open this):    {(qa / 'report' / 'index.html').resolve()}")
    for line in headline(qa / "evaluation"):
        typer.echo(f"  {line}")
    return ExitCode.OK
