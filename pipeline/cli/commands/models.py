"""``ldct models [list|info CKPT]``: the registered denoisers and what a checkpoint holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

models_app = typer.Typer(
    help="Registered denoiser models (parameters, GFLOPs per 512x512 slice) and checkpoints.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to the CLI."""
    app.add_typer(models_app, name="models")


def _list(as_json: bool) -> None:
    from dataclasses import asdict

    from pipeline.models.registry import list_models

    infos = list_models()
    if as_json:
        typer.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    typer.echo(f"{'name':<12} {'params':>10} {'GFLOP/512²':>11}  description")
    for i in infos:
        mark = (f" [bundled: ldct denoise's default{_bundled_params()}]" if i.bundled else "") + (
            " [training default]" if i.default else ""
        )
        typer.echo(f"{i.name:<12} {i.n_params:>10,} {i.gflops_512:>11.1f}  {i.description}{mark}")


def _bundled_params() -> str:
    """``, with k=v ...`` when the bundled checkpoint sets parameters beyond the entry's preset."""
    from pipeline.models.bundled import bundled_model_path
    from pipeline.models.checkpoint import load_checkpoint
    from pipeline.models.flops import count_parameters, gflops_per_slice

    ck = load_checkpoint(bundled_model_path())
    params = ck.model_cfg["params"]
    if not params:
        return ""
    kv = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    n, g = count_parameters(ck.model), gflops_per_slice(ck.model)
    return f", with {kv}: {n:,} params, {g:.1f} GFLOP/512²"


@models_app.callback()
def models_root(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the registered models (same as ``ldct models list``)."""
    if ctx.invoked_subcommand is None:
        _list(as_json)


@models_app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List registered models with trainable parameters and GFLOPs per 512x512 slice."""
    _list(as_json)


@models_app.command("info")
def info(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by ldct train."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Verify a checkpoint (weights hash, model rebuild) and show its model and training info."""
    from pipeline.models.checkpoint import load_checkpoint
    from pipeline.models.flops import count_parameters, gflops_per_slice

    ck = load_checkpoint(checkpoint)
    data = {
        "path": str(checkpoint),
        "model": ck.model_cfg["name"],
        "params": ck.model_cfg["params"],
        "model_hash": ck.model_hash,
        "weights_sha256": ck.sha256,
        "n_params": count_parameters(ck.model),
        "gflops_512": round(gflops_per_slice(ck.model), 2),
        "format_version": ck.meta.get("format_version"),
        "package_version": ck.meta.get("package_version"),
        "torch_version": ck.meta.get("torch_version"),
        "created_utc": ck.meta.get("created_utc"),
        "extra": ck.meta.get("extra", {}),
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key == "extra":
            continue
        typer.echo(f"{key + ':':<17} {value}")
    typer.echo("weights:          verified (sha256 matches)")
    extra = data["extra"]
    if extra:
        typer.echo("extra:")
        for k, v in extra.items():
            typer.echo(f"  {k}: {json.dumps(v)}")
