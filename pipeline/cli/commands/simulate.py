"""``ldct simulate``: turn a full-dose CT series into its simulated low-dose partner."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the CLI."""
    app.command("simulate")(simulate)


def simulate(
    input_path: Path = typer.Argument(
        ..., help="Folder (or file) holding ONE full-dose CT series."
    ),
    out: Path = typer.Argument(..., help="New, empty output folder for the low-dose series."),
    dose: float = typer.Option(0.25, "--dose", help="Dose fraction to emulate, 0 < d < 1."),
    seed: int = typer.Option(0, "--seed", help="Noise seed (same seed, same output and UIDs)."),
    noise_sd: float = typer.Option(
        12.0,
        "--noise-sd",
        help="Noise SD (HU) the full-dose input has in a 300 mm water-equivalent region; "
        "sets the calibrated photon count I0.",
    ),
    allow_cropped: bool = typer.Option(
        False, "--allow-cropped", help="Simulate even if the body touches the image edge."
    ),
) -> int:
    """Add the extra sinogram-domain noise of going from full dose to DOSE, write it as a new
    series in the same study (derived, dose recorded in the header) plus simulation.json."""
    import os
    import shutil

    from pipeline.errors import ConfigError, SimulationError
    from pipeline.io.read import read_volume
    from pipeline.simulate.from_volume import simulate_low_dose, write_low_dose_series
    from pipeline.simulate.lowdose import SimulationSettings
    from pipeline.simulate.noise import check_dose
    from pipeline.utils.files import is_within

    try:
        check_dose(dose)
    except SimulationError as exc:
        raise ConfigError(f"--dose: {exc}") from None
    if not noise_sd > 0:
        raise ConfigError(f"--noise-sd must be positive, found {noise_sd}")
    if not input_path.exists():
        raise SimulationError("input does not exist", path=input_path)
    src_dir = input_path if input_path.is_dir() else input_path.parent
    if is_within(out, src_dir) or is_within(src_dir, out):
        raise ConfigError(f"output {out} must not be inside (or contain) the input {src_dir}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output {out} exists and is not an empty folder")
    volume = read_volume(input_path)
    result = simulate_low_dose(
        volume,
        dose,
        seed=seed,
        settings=SimulationSettings(target_sd_hu=noise_sd),
        allow_cropped=allow_cropped,
    )
    # write into a hidden sibling folder and rename it: OUT appears complete or not at all
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        written = write_low_dose_series(volume, result, tmp)
        if out.exists():
            out.rmdir()  # checked empty above
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for w in result.warnings + written.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(
        f"wrote {len(written.paths)} slice(s), dose {dose:g}, series "
        f"{written.series_instance_uid} to {out}"
    )
    return 0
