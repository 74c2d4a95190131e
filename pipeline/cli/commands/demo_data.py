"""``ldct demo-data``: write the synthetic paired demo cohort (phantoms, simulated low dose)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``demo-data`` to the CLI."""
    app.command("demo-data")(demo_data)


def demo_data(
    out: Path = typer.Argument(..., help="Output folder (empty, or an earlier demo cohort)."),
    patients: int = typer.Option(4, "--patients", min=1, help="Number of phantom patients."),
    slices: int = typer.Option(16, "--slices", min=1, help="Slices per patient."),
    size: int = typer.Option(256, "--size", min=32, help="Image matrix (size x size pixels)."),
    seed: int = typer.Option(0, "--seed", help="Seed: same seed, same cohort (and UIDs)."),
    dose: float = typer.Option(0.25, "--dose", help="Low-dose fraction of full dose, 0 < d < 1."),
    noise_sd: float = typer.Option(
        12.0, "--noise-sd", help="Full-dose noise SD (HU) in a 300 mm water cylinder."
    ),
) -> int:
    """Write OUT/<patient>/{full_dose,quarter_dose}/ DICOM series, OUT/<patient>/pair.json and
    OUT/cohort.json: anatomy-like abdominal phantoms with sinogram-domain simulated noise."""
    import time

    from pipeline.simulate.cohort import make_demo_cohort
    from pipeline.simulate.lowdose import SimulationSettings

    t0 = time.perf_counter()
    cohort = make_demo_cohort(
        out,
        n_patients=patients,
        n_slices=slices,
        size=size,
        seed=seed,
        dose=dose,
        settings=SimulationSettings(target_sd_hu=noise_sd),
    )
    dt = time.perf_counter() - t0
    typer.echo(
        f"wrote {len(cohort.patients)} patient(s) x {slices} slice(s) of {size}x{size} "
        f"(full dose + dose {dose:g}) to {cohort.root} in {dt:.1f} s; manifest: {cohort.manifest}"
    )
    return 0
