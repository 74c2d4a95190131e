"""Noise insertion for a real full-dose series (``ldct simulate``): checks, simulation, output.

The input is refused (``SimulationError``, one clear line) when it is not CT, has no usable
geometry (non-square pixels, unknown spacing), or when the field of view is *cropped*: the
simulation needs every ray through the patient, so a body that touches the image edge (a
reconstruction zoomed inside the patient) would give wrong path lengths. Detection: on any
slice, more than ``max_edge_fraction`` of the non-padding pixels on the image border are
tissue (> -500 HU). We refuse rather than extrapolate; ``allow_cropped=True`` proceeds anyway
and records a warning (the noise near the cut is then underestimated).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import __version__
from pipeline.errors import SimulationError
from pipeline.intensity import AIR_HU
from pipeline.io.derived_header import DerivedInfo
from pipeline.io.volume import CTVolume
from pipeline.io.write import WrittenSeries, write_derived_series
from pipeline.simulate.lowdose import SimulationSettings, insert_noise
from pipeline.simulate.noise import check_dose
from pipeline.utils.files import atomic_write_text

log = logging.getLogger(__name__)

#: HU above which a border pixel counts as tissue for the cropped-FOV check
TISSUE_HU = -500.0
DEFAULT_MAX_EDGE_FRACTION = 0.05
SIDECAR_NAME = "simulation.json"


@dataclass
class LowDoseResult:
    """The simulated volume and what was done, for headers and the sidecar."""

    hu: np.ndarray
    dose: float
    seed: int
    info: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def edge_tissue_fraction(hu: np.ndarray, padding: np.ndarray | None) -> np.ndarray:
    """Per slice, the fraction of non-padding border pixels above ``TISSUE_HU`` (Z,)."""
    border = np.zeros(hu.shape[1:], dtype=bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    valid = np.broadcast_to(border, hu.shape).copy()
    if padding is not None:
        valid &= ~padding
    tissue = (hu > TISSUE_HU) & valid
    n_valid = valid.reshape(hu.shape[0], -1).sum(axis=1)
    return tissue.reshape(hu.shape[0], -1).sum(axis=1) / np.maximum(n_valid, 1)


def check_input(
    volume: CTVolume,
    *,
    allow_cropped: bool = False,
    max_edge_fraction: float = DEFAULT_MAX_EDGE_FRACTION,
) -> list[str]:
    """Refuse inputs the simulation cannot handle; returns warnings for tolerated problems."""
    modality = str(volume.meta.get("Modality") or "CT").upper()
    if modality != "CT":
        raise SimulationError(f"input is not CT (Modality {modality}); only CT can be simulated")
    _, sy, sx = volume.spacing_mm
    if not (np.isfinite([sy, sx]).all() and sy > 0 and sx > 0):
        raise SimulationError(f"input has no usable pixel spacing (found {sy} x {sx} mm)")
    if abs(sy - sx) > 1e-3 * max(sy, sx):
        raise SimulationError(f"input pixels are not square ({sy} x {sx} mm); cannot simulate")
    if min(volume.shape[1:]) < 16:
        raise SimulationError(f"input slices are too small ({volume.shape[1:]}) to simulate")
    warnings: list[str] = []
    frac = edge_tissue_fraction(volume.hu, volume.padding_mask)
    worst = int(np.argmax(frac))
    if frac[worst] > max_edge_fraction:
        msg = (
            f"cropped field of view: on slice {worst + 1} {frac[worst]:.0%} of the image border "
            f"is tissue (> {TISSUE_HU:g} HU, limit {max_edge_fraction:.0%}); the body must lie "
            "inside the image for a sinogram-domain simulation"
        )
        if not allow_cropped:
            raise SimulationError(msg + " (use --allow-cropped to simulate anyway)")
        warnings.append(msg)
    return warnings


def simulate_low_dose(
    volume: CTVolume,
    dose: float,
    *,
    seed: int = 0,
    settings: SimulationSettings | None = None,
    allow_cropped: bool = False,
) -> LowDoseResult:
    """Emulate ``dose`` from a full-dose volume (mode b); padding stays padding."""
    dose = check_dose(dose)
    settings = settings or SimulationSettings()
    warnings = check_input(volume, allow_cropped=allow_cropped)
    hu = volume.hu.copy()
    if volume.padding_mask is not None:
        hu[volume.padding_mask] = AIR_HU
    low, model = insert_noise(hu, volume.spacing_mm[1], dose, seed=seed, settings=settings)
    if volume.padding_mask is not None:
        low[volume.padding_mask] = AIR_HU
    info = {
        "mode": "noise insertion into a full-dose scan",
        "dose": dose,
        "seed": seed,
        "i0_photons_per_bin": model.i0,
        "calibration_water_diameter_mm": model.water_diameter_mm,
        **settings.as_dict(),
    }
    return LowDoseResult(low, dose, seed, info, warnings)


def write_low_dose_series(
    volume: CTVolume, result: LowDoseResult, out_dir: str | Path
) -> WrittenSeries:
    """Write the simulated volume as a derived series of ``volume`` plus ``simulation.json``."""
    dose_pct = f"{result.dose * 100:g}%"
    src_desc = str(volume.meta.get("SeriesDescription") or "CT")
    derivation = (
        f"Simulated low dose: {dose_pct} of the source series dose (dose fraction "
        f"{result.dose:g}); sinogram-domain noise insertion, parallel beam, Poisson + electronic "
        f"noise, I0={result.info['i0_photons_per_bin']:.4g} photons/bin calibrated to "
        f"{result.info['target_sd_hu']:g} HU full-dose noise, seed {result.seed}; "
        f"ldct-pipeline {__version__}"
    )
    key = json.dumps({k: result.info[k] for k in sorted(result.info)}, default=str)
    written = write_derived_series(
        volume,
        result.hu,
        out_dir,
        series_description=f"{src_desc} [sim {dose_pct} dose]",
        derivation_description=derivation,
        uid_key=f"simulate {key}",
        extra_tags={"ImageComments": f"simulated low dose, dose fraction {result.dose:g}"},
        # noise insertion has no CID 7203 code: DerivationDescription says what was done
        derived=DerivedInfo(
            model_name="ldct simulate", derivation_codes=(), dose_factor=result.dose
        ),
    )
    sidecar = {
        **result.info,
        "pipeline_version": __version__,
        "source_series_uid": volume.meta.get("SeriesInstanceUID"),
        "series_instance_uid": written.series_instance_uid,
        "study_instance_uid": written.study_instance_uid,
        "n_slices": len(written.paths),
        "n_clipped": written.n_clipped,
        "warnings": result.warnings + written.warnings,
    }
    atomic_write_text(Path(out_dir) / SIDECAR_NAME, json.dumps(sidecar, indent=2, default=str))
    return written
