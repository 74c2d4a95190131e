"""``ldct weights status|fetch|import``: the ImageNet VGG16 weights the perceptual loss needs."""

from __future__ import annotations

from pathlib import Path

import typer

weights_app = typer.Typer(
    help="VGG16 ImageNet weights for the perceptual loss (torch hub cache).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``weights`` command group to the CLI."""
    app.add_typer(weights_app, name="weights")


@weights_app.command("status")
def status(
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Skip the SHA-256 check (hashing 553 MB takes a second or two)."
    ),
) -> int:
    """Say whether torchvision's ImageNet VGG16 file is installed and verified.

    Exit code 0 when usable, 4 when missing or not matching the published hash.
    """
    from pipeline.errors import ExitCode
    from pipeline.losses import weights as W

    st = W.weights_status(verify=not no_verify)
    typer.echo(f"hub cache:  {st.path.parent}")
    typer.echo(f"file:       {W.IMAGENET_FILENAME} ({W.IMAGENET_URL})")
    if not st.exists:
        typer.echo("status:     missing")
        typer.echo(f"to install: {W.HOW_TO_GET}")
        return ExitCode.RESOURCE
    typer.echo(f"size:       {st.size_bytes} bytes (expected {W.IMAGENET_SIZE_BYTES})")
    if st.verified is None:
        typer.echo("status:     present (not verified: --no-verify)")
        return ExitCode.OK
    typer.echo(f"sha256:     {st.sha256}")
    if not st.verified:
        typer.echo(f"status:     CORRUPT or different file (expected sha256 {W.IMAGENET_SHA256})")
        typer.echo(f"to repair:  delete it, then {W.HOW_TO_GET}")
        return ExitCode.RESOURCE
    typer.echo("status:     ok (imagenet, verified)")
    return ExitCode.OK


@weights_app.command("fetch")
def fetch() -> int:
    """Download the ImageNet VGG16 weights with torch hub's downloader (needs internet)."""
    from pipeline.losses import weights as W

    dest = W.fetch_weights(progress=True)
    typer.echo(f"installed and verified: {dest}")
    return 0


@weights_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="A copy of torchvision's vgg16-397923af.pth."),
) -> int:
    """Verify FILE (size, SHA-256, VGG16 layer shapes) and install it into the torch hub cache."""
    from pipeline.losses import weights as W

    dest = W.import_weights(file)
    typer.echo(f"installed and verified: {dest}")
    return 0
