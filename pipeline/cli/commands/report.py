"""``ldct report`` (QA pages from an evaluation) and ``ldct qa`` (evaluate + report)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pipeline.errors import ExitCode

if TYPE_CHECKING:
    from pipeline.report.config import ReportConfig
    from pipeline.report.pseudonym import Pseudonymizer
    from pipeline.report.render import ReportResult

log = logging.getLogger("ldct.report")

FAIL_ON_HELP = "Exit with code 1 when a patient's verdict is at least this (never|review|fail)."


def _load_cfg(
    config: Path | None, overrides: list[str], pseudonymize: bool, pdf: bool, fail_on: str
) -> ReportConfig:
    """The report config (file < --set < flags), after checking the --fail-on value."""
    if fail_on not in ("never", "review", "fail"):
        raise typer.BadParameter("must be never, review or fail", param_hint="--fail-on")
    from pipeline.config import load_config
    from pipeline.report.config import ReportConfig

    cfg = load_config(ReportConfig, config, overrides)
    if pseudonymize:
        cfg.pseudonymize = True
    if pdf:
        cfg.pdf = True
    return cfg


def _pseudonymizer(cfg: ReportConfig, key: str | None) -> Pseudonymizer:
    """The run's one pseudonymiser (identity unless pseudonymising); installs the log policy."""
    from pipeline.report.pseudonym import Pseudonymizer, withhold_unmapped_logs

    pseudo = Pseudonymizer(cfg.pseudonymize, key)
    if pseudo.enabled:
        withhold_unmapped_logs()
    return pseudo


def _finish(result: ReportResult, fail_on: str) -> int:
    typer.echo(f"QA report: {result.index}")
    counts = {v: list(result.verdicts.values()).count(v) for v in ("pass", "review", "fail")}
    typer.echo(f"verdicts: {counts['pass']} pass, {counts['review']} review, {counts['fail']} fail")
    if result.pdfs:
        typer.echo(f"PDFs: {len(result.pdfs)} in {result.pdfs[0].parent}")
    order = {"never": 3, "review": 1, "fail": 2}
    level = order[fail_on]
    worst = max((order[v] for v in result.verdicts.values() if v != "pass"), default=0)
    return ExitCode.PARTIAL_FAILURE if level < 3 and worst >= level else ExitCode.OK


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        eval_dir: Path = typer.Argument(..., help="Folder written by `ldct evaluate`."),
        out: Path = typer.Option(..., "--out", "-o", help="Report folder to write."),
        config: Path | None = typer.Option(None, "--config", help="Report YAML (rules, panels)."),
        overrides: list[str] = typer.Option([], "--set", help="Override a config key (k=v)."),
        pseudonymize: bool = typer.Option(
            False, "--pseudonymize", help="Replace patient identifiers with keyed hashes."
        ),
        key: str | None = typer.Option(
            None, "--key", envvar="LDCT_PSEUDONYM_KEY", help="Secret key for --pseudonymize."
        ),
        pdf: bool = typer.Option(False, "--pdf", help="Also print each page to PDF (chromium)."),
        fail_on: str = typer.Option("never", "--fail-on", help=FAIL_ON_HELP),
    ) -> None:
        """Write per-patient QA pages (HTML, images embedded) and a cohort index."""
        from pipeline.report.render import build_report

        cfg = _load_cfg(config, overrides, pseudonymize, pdf, fail_on)
        result = build_report(eval_dir, out, cfg, pseudo=_pseudonymizer(cfg, key))
        raise typer.Exit(_finish(result, fail_on))

    @app.command("qa")
    def qa(
        low: Path = typer.Option(..., "--low", help="Low-dose input series/tree/dataset root."),
        denoised: Path = typer.Option(..., "--denoised", help="Denoised series or tree."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (evaluation/, report/)."),
        full: Path | None = typer.Option(None, "--full", help="Full-dose reference (optional)."),
        profile: list[str] = typer.Option([], "--profile", help="Metric profile(s) to compute."),
        config: Path | None = typer.Option(None, "--config", help="Report YAML (rules, panels)."),
        overrides: list[str] = typer.Option([], "--set", help="Override a report key (k=v)."),
        pseudonymize: bool = typer.Option(
            False,
            "--pseudonymize",
            help="Keyed pseudonyms for patients and UIDs in every table, page and log line.",
        ),
        key: str | None = typer.Option(
            None, "--key", envvar="LDCT_PSEUDONYM_KEY", help="Secret key for --pseudonymize."
        ),
        pdf: bool = typer.Option(False, "--pdf", help="Also print each page to PDF."),
        fail_on: str = typer.Option("never", "--fail-on", help=FAIL_ON_HELP),
        ignore_frame: bool = typer.Option(
            False,
            "--ignore-frame-of-reference",
            help="Accept low/full pairs whose FrameOfReferenceUIDs differ (as ldct evaluate).",
        ),
        baseline: list[Path] = typer.Option(
            [], "--baseline", help="Baseline denoiser output tree (bm3d/nlm), repeatable."
        ),
    ) -> None:
        """Evaluate (as `ldct evaluate`) and write the QA report in one go."""
        from pipeline.cli.commands.evaluate import named_baselines
        from pipeline.evaluate.runner import DEFAULT_PROFILES, baseline_name, evaluate
        from pipeline.report.render import build_report

        cfg = _load_cfg(config, overrides, pseudonymize, pdf, fail_on)
        pseudo = _pseudonymizer(cfg, key)
        eval_dir = out / "evaluation"
        res = evaluate(
            low,
            eval_dir,
            full=full,
            denoised=denoised,
            profiles=tuple(profile) or DEFAULT_PROFILES,
            command=pseudo.command(["ldct", *sys.argv[1:]]),
            ignore_frame_of_reference=ignore_frame,
            baselines=named_baselines(baseline, baseline_name),
            pseudo=pseudo,
        )
        typer.echo(f"evaluation tables: {eval_dir}")
        result = build_report(eval_dir, out / "report", cfg, pseudo=pseudo, items=res.items)
        raise typer.Exit(_finish(result, fail_on))
