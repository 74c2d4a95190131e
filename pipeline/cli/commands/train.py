"""``ldct train --config configs/X.yaml [--set key=value ...] [--resume]``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``train`` command."""
    app.command("train")(train)


def train(
    config: Path = typer.Option(..., "--config", "-c", help="Training config (YAML)."),
    overrides: list[str] = typer.Option(
        [], "--set", "-s", help="Override a config value: key.sub=value (YAML value). Repeatable."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in output_dir exactly where it stopped."
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", "-o", help="Shortcut for --set output_dir=DIR."
    ),
) -> None:
    """Train a denoiser on paired low/full-dose data (also under torchrun for several processes).

    Writes to output_dir: config.yaml, state/last.pt (resume), best.pt and final.pt (model
    checkpoints for `ldct denoise --model`), metrics.jsonl/.csv and tensorboard/.
    """
    from pipeline.train.config import load_train_config
    from pipeline.train.run import run_training

    sets = list(overrides)
    if output_dir is not None:
        sets.append(f"output_dir={output_dir}")
    cfg = load_train_config(config, sets)
    result = run_training(cfg, resume=resume)
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return
    typer.echo(f"trained {result.steps} steps -> {cfg.output_dir}")
    if result.stopped_early:
        typer.echo(f"stopped early (no {cfg.validation.metric.value} improvement)")
    if result.skipped:
        typer.echo(f"skipped {result.skipped} batch(es) with non-finite values")
    if result.best_value is not None:
        typer.echo(
            f"best {cfg.validation.metric.value} {result.best_value:.4f} at step "
            f"{result.best_step}: {result.best_path}"
        )
    if result.final_path is not None:
        typer.echo(f"final model: {result.final_path}")
