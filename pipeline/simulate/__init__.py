"""Low-dose CT simulation (sinogram domain), anatomy-like phantoms and the paired demo cohort.

Module map:

* ``geometry`` -- parallel-beam scan geometry, HU <-> attenuation; ``projector`` -- forward
  projection, ramp filters, FBP; ``matrices`` -- cached sparse system matrices.
* ``noise`` -- Poisson + electronic noise, I0 calibration; ``lowdose`` -- pairs from clean
  images and noise insertion; ``from_volume`` -- ``ldct simulate`` on a CT series.
* ``phantom`` -- the seeded abdominal phantom; ``cohort`` -- ``ldct demo-data``;
  ``structures``, ``trainset`` -- the training-set generator; ``heldout`` -- the held-out
  benchmark set (never for training).

See docs/simulation.md.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.simulate.cohort import make_demo_cohort
    from pipeline.simulate.from_volume import (
        LowDoseResult,
        simulate_low_dose,
        write_low_dose_series,
    )
    from pipeline.simulate.geometry import ParallelGeometry, hu_to_mu, mu_to_hu
    from pipeline.simulate.lowdose import SimulationSettings, insert_noise, simulate_pair
    from pipeline.simulate.noise import calibrate_noise, check_dose
    from pipeline.simulate.phantom import make_phantom
    from pipeline.simulate.projector import fbp, forward_project

_EXPORTS: dict[str, tuple[str, ...]] = {
    "geometry": ("ParallelGeometry", "hu_to_mu", "mu_to_hu"),
    "projector": ("fbp", "forward_project"),
    "noise": ("calibrate_noise", "check_dose"),
    "lowdose": ("SimulationSettings", "insert_noise", "simulate_pair"),
    "from_volume": ("LowDoseResult", "simulate_low_dose", "write_low_dose_series"),
    "phantom": ("make_phantom",),
    "cohort": ("make_demo_cohort",),
}

__all__ = [
    "LowDoseResult",
    "ParallelGeometry",
    "SimulationSettings",
    "calibrate_noise",
    "check_dose",
    "fbp",
    "forward_project",
    "hu_to_mu",
    "insert_noise",
    "make_demo_cohort",
    "make_phantom",
    "mu_to_hu",
    "simulate_low_dose",
    "simulate_pair",
    "write_low_dose_series",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
