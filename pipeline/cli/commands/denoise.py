"""``ldct denoise``: batch-denoise CT series into derived DICOM/NIfTI; ``ldct denoise-merge``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pipeline.errors import ExitCode

if TYPE_CHECKING:
    from pipeline.infer.plan import Plan, PlanItem


def register(app: typer.Typer) -> None:
    """Add ``denoise`` and ``denoise-merge`` to the CLI."""
    app.command("denoise")(denoise)
    app.command("denoise-merge")(denoise_merge)


def denoise(
    inputs: list[Path] = typer.Argument(..., help="Folders or files holding DICOM CT series."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (outside every input)."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Checkpoint, or bm3d / nlm (non-learned baselines; bm3d needs the [baselines] "
        "extra); default: the bundled demo model.",
    ),
    fmt: str | None = typer.Option(None, "--format", help="dicom | nifti | both (default dicom)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the plan and rules; write nothing."
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="i/n: process share i of n (default: RANK/WORLD_SIZE, else all)."
    ),
    precision: str | None = typer.Option(None, "--precision", help="auto | fp32 | bf16."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML (configs/denoise.yaml)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. --set batch_size=4 (repeatable)."
    ),
) -> int:
    """Denoise every selected CT series under INPUT... into OUT, with a manifest; resumable.

    ``--model bm3d`` / ``--model nlm`` run the non-learned baselines (blind: the noise level is
    estimated per slice; ``--set classical.sigma_hu=20`` fixes it). Exit code 0: all selected
    series ok (or already done); 1: some series failed (see OUT/manifest.csv); 2: bad options;
    3: nothing readable was found; 4: model missing/corrupt (or bm3d not installed).
    """
    from pipeline.config import load_config
    from pipeline.errors import DicomError
    from pipeline.infer.config import DenoiseConfig, resolve_shard
    from pipeline.infer.loader import load_denoiser, resolve_model_path
    from pipeline.infer.plan import check_paths
    from pipeline.infer.session import denoise_planned, plan_inputs
    from pipeline.models.classical import is_classical

    cfg = load_config(DenoiseConfig, config, overrides)
    pairs = (("model", model), ("format", fmt), ("precision", precision), ("shard", shard))
    explicit = {k: v for k, v in pairs if v is not None}
    if explicit:  # explicit flags win over the file and --set (taken verbatim, not as YAML)
        cfg = load_config(DenoiseConfig, base={**cfg.model_dump(mode="json"), **explicit})
    out_root = out.resolve()
    check_paths(inputs, out_root)
    source = resolve_model_path(cfg)
    if source.bundled:
        typer.echo(f"No --model given: using the bundled demo model ({source.path}).")
    denoiser = load_denoiser(cfg, source)
    index, count = resolve_shard(cfg.shard)
    plan, result = plan_inputs(inputs, out_root, cfg, denoiser, (index, count))
    if dry_run:
        kind = "config" if is_classical(cfg.model) else "weights"
        _print_plan(plan, f"{denoiser.name} ({denoiser.precision})", denoiser.sha256, kind)
        return ExitCode.OK
    if not result.series and not result.lost_series:
        raise DicomError(
            f"no CT series found under {', '.join(map(str, inputs))} "
            f"({len(result.skipped)} file(s) skipped; --dry-run lists why)"
        )
    summary = denoise_planned(plan, cfg, denoiser)
    typer.echo(summary.text)
    return summary.exit_code


def denoise_merge(out: Path = typer.Argument(..., help="Output folder of `ldct denoise`.")) -> int:
    """Merge the manifest parts of sharded runs into OUT/manifest.{csv,json}."""
    from pipeline.infer.manifest import merge_parts
    from pipeline.records import Status

    rows = merge_parts(out.resolve())
    failed = sum(r.status == Status.FAILED.value for r in rows)
    typer.echo(f"merged {len(rows)} series into {out / 'manifest.csv'} ({failed} failed)")
    return ExitCode.PARTIAL_FAILURE if failed else ExitCode.OK


def _plan_label(plan: Plan, it: PlanItem) -> str:
    """What a run would do with one item: skip, other shard, done (verified; skipped), DENOISE."""
    from pipeline.infer.publish import verify_completed

    if not it.selected:
        return "skip"
    if it.shard != plan.shard_index:
        return "other shard"
    if verify_completed(it.record_dir, it.out_dir, it.fingerprint) is not None:
        return "done"
    return "DENOISE"


def _print_plan(plan: Plan, name: str, sha: str, kind: str = "weights") -> None:
    r = plan.rules
    typer.echo(f"Model: {name} ({kind} sha256 {sha[:16]}...)")
    typer.echo(f"Output: {plan.out_root}   shard {plan.shard_index}/{plan.shard_count}")
    typer.echo(
        f"Rules: modalities={r.modalities} min_slices={r.min_slices} min_matrix={r.min_matrix} "
        f"exclude={r.exclude_descriptions} include={r.include_descriptions or 'any'} "
        f"skip_own_outputs={r.skip_own_outputs} skip_derived={r.skip_derived}  "
        "(override with --set selection.KEY=VALUE)"
    )
    labels = [_plan_label(plan, it) for it in plan.items]
    for it, what in zip(plan.items, labels, strict=True):
        f = it.facts
        why = f" ({it.skip_reason})" if it.skip_reason else ""
        lost = getattr(it.record, "lost", None) or []
        if it.selected and lost:
            why += (
                f" (INCOMPLETE: {len(lost)} file(s) of this series not usable, e.g. "
                f"{lost[0].path.name}: {lost[0].reason}; fails unless allow_incomplete)"
            )
        errors = getattr(it.record, "errors", None) or []
        if it.selected and errors:
            why += f" (REFUSED: {errors[0]})"
        typer.echo(
            f"  {what:<11} {f.n_slices:>4} x {f.rows}x{f.columns}  {f.description!r}  "
            f"{f.folder} -> {it.out_dir.relative_to(plan.out_root)}{why}"
        )
    if labels.count("done"):
        typer.echo(f"  {labels.count('done')} series already done (verified): a rerun skips them")
    for lost in plan.lost_series:
        typer.echo(f"  FAIL        {lost.label} in {lost.folder}: {lost.reason}")
    for sf in plan.skipped_files[:50]:
        typer.echo(f"  file skipped: {sf.path}: {sf.reason}")
    if len(plan.skipped_files) > 50:
        typer.echo(f"  ... and {len(plan.skipped_files) - 50} more skipped files")
