"""The synthetic paired demo cohort: phantoms -> simulated full/low-dose pairs -> DICOM.

Layout written under ``out`` (documented in docs/simulation.md)::

    out/cohort.json                    # manifest: settings, calibrated I0, one entry per patient
    out/<patient>/full_dose/IM00001.dcm ...   # original CT series, noisy full dose
    out/<patient>/quarter_dose/IM00001.dcm ...  # same study/frame of reference, dose 0.25
    out/<patient>/pair.json            # sidecar: dose, seed, UIDs, I0, lesion list

Both series of a patient share StudyInstanceUID and FrameOfReferenceUID and have identical
geometry, slice for slice. Everything is deterministic for (seed, sizes): rerunning rewrites
the same files with the same UIDs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import __version__
from pipeline.errors import SimulationError
from pipeline.intensity import AIR_HU
from pipeline.io.write import derive_uid, write_new_series
from pipeline.simulate.lowdose import SimulationSettings, simulate_pair
from pipeline.simulate.noise import check_dose
from pipeline.simulate.phantom import DEFAULT_FOV_MM, DEFAULT_SLICE_MM, make_phantom
from pipeline.utils.files import atomic_write_text, ensure_inside
from pipeline.utils.progress import progress

log = logging.getLogger(__name__)

MANIFEST_NAME = "cohort.json"
FULL_DIR = "full_dose"
_NAMED_DOSES = {0.25: "quarter_dose", 0.5: "half_dose", 0.1: "tenth_dose"}


def low_dose_dirname(dose: float) -> str:
    """Folder name of the low-dose series: ``quarter_dose`` for 0.25, else ``dose_<pct>pct``."""
    for value, name in _NAMED_DOSES.items():
        if abs(dose - value) < 1e-9:
            return name
    return f"dose_{dose * 100:g}pct".replace(".", "p")


@dataclass(frozen=True)
class DemoCohort:
    """What :func:`make_demo_cohort` wrote."""

    root: Path
    manifest: Path
    patients: list[dict[str, Any]]


def fov_padding_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """True outside the inscribed reconstruction circle (what scanners store as padding)."""
    _, ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = (min(ny, nx) - 1) / 2.0
    outside = (yy - (ny - 1) / 2.0) ** 2 + (xx - (nx - 1) / 2.0) ** 2 > (r + 0.5) ** 2
    return np.broadcast_to(outside, shape).copy()


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SimulationError("output exists and is not a folder", path=out)
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise SimulationError(
            "output folder is not empty and holds no demo cohort; choose an empty folder", path=out
        )


def make_demo_cohort(
    out: str | Path,
    n_patients: int = 4,
    n_slices: int = 16,
    size: int = 256,
    seed: int = 0,
    dose: float = 0.25,
    *,
    fov_mm: float = DEFAULT_FOV_MM,
    slice_mm: float = DEFAULT_SLICE_MM,
    settings: SimulationSettings | None = None,
    pad_outside_fov: bool = True,
) -> DemoCohort:
    """Write ``n_patients`` phantom patients as paired full/low-dose DICOM series under ``out``."""
    dose = check_dose(dose)
    if n_patients < 1 or n_slices < 1:
        raise SimulationError(f"need >= 1 patient and slice, found {n_patients}, {n_slices}")
    settings = settings or SimulationSettings()
    root = Path(out)
    _check_out(root)
    root.mkdir(parents=True, exist_ok=True)
    low_dir = low_dose_dirname(dose)
    patients: list[dict[str, Any]] = []
    noise_info: dict[str, Any] = {}
    for i in progress(range(n_patients), desc="demo patients", total=n_patients):
        entry, noise_info = _write_patient(
            root,
            i,
            seed=seed,
            shape=(n_slices, size),
            dose=dose,
            geometry=(fov_mm, slice_mm),
            settings=settings,
            pad_outside_fov=pad_outside_fov,
        )
        patients.append(entry)
    manifest = {
        "format": "ldct-demo-cohort",
        "version": 1,
        "pipeline_version": __version__,
        "seed": seed,
        "dose": dose,
        "n_patients": n_patients,
        "n_slices": n_slices,
        "size": size,
        "fov_mm": fov_mm,
        "slice_mm": slice_mm,
        "full_dir": FULL_DIR,
        "low_dir": low_dir,
        "simulation": noise_info,
        "patients": patients,
    }
    path = atomic_write_text(root / MANIFEST_NAME, json.dumps(manifest, indent=2))
    return DemoCohort(root=root, manifest=path, patients=patients)


def _write_patient(
    root: Path,
    i: int,
    *,
    seed: int,
    shape: tuple[int, int],
    dose: float,
    geometry: tuple[float, float],
    settings: SimulationSettings,
    pad_outside_fov: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Patient ``i``: phantom -> simulated pair -> two DICOM series + pair.json.

    ``shape`` is (slices, matrix size), ``geometry`` (FOV, slice thickness) in mm. Returns the
    manifest entry and the simulation's noise settings.
    """
    n_slices, size = shape
    fov_mm, slice_mm = geometry
    low_dir = low_dose_dirname(dose)
    pid = f"DEMO{i + 1:03d}"
    pseed = int(seed) * 1000 + i
    ph = make_phantom(n_slices, size, pseed, fov_mm=fov_mm, slice_mm=slice_mm)
    outside = fov_padding_mask(ph.hu.shape)
    clean = np.where(outside, np.float32(AIR_HU), ph.hu)  # the scan FOV is the circle
    pair = simulate_pair(clean, ph.spacing_mm[1], dose, seed=pseed, settings=settings)
    noise_info = {"i0_photons_per_bin": pair.noise.i0, **settings.as_dict()}
    noise_info["n_views"] = pair.geometry.n_views
    # DICOM LPS: +z is superior; the phantom's z runs head-to-foot, so flip the slice order
    px = ph.spacing_mm[1]
    origin = (-(size - 1) / 2.0 * px, -(size - 1) / 2.0 * px, -float(ph.z_mm[-1]))
    study = derive_uid("demo-study", pid, str(seed), str(size), str(n_slices))
    mask = outside[::-1] if pad_outside_fov else None
    pdir = ensure_inside(root, root / pid)
    common: dict[str, Any] = {
        "spacing_mm": ph.spacing_mm,
        "origin_mm": origin,
        "direction": np.eye(3),
        "patient_id": pid,
        "patient_name": f"Demo^Patient{i + 1:03d}",
        "study_uid": study,
        "uid_key": f"demo seed={seed} dose={dose}",
        "study_description": "Synthetic abdomen phantom (ldct demo cohort)",
        "padding_mask": mask,
    }
    full = write_new_series(
        pair.full_hu[::-1],
        out_dir=pdir / FULL_DIR,
        series_description="Full dose (simulated)",
        series_number=2,
        extra_tags={"ImageComments": "simulated full dose (dose fraction 1.0)"},
        **common,
    )
    low = write_new_series(
        pair.low_hu[::-1],
        out_dir=pdir / low_dir,
        series_description=f"Low dose {dose * 100:g}% (simulated)",
        series_number=3,
        extra_tags={"ImageComments": f"simulated low dose: dose fraction {dose:g} of full"},
        **common,
    )
    entry = {
        "patient": pid,
        "full": f"{pid}/{FULL_DIR}",
        "low": f"{pid}/{low_dir}",
        "dose": dose,
        "seed": pseed,
        "n_slices": n_slices,
        "size": size,
        "spacing_mm": list(ph.spacing_mm),
        "study_uid": study,
        "full_series_uid": full.series_instance_uid,
        "low_series_uid": low.series_instance_uid,
        "n_clipped": full.n_clipped + low.n_clipped,
        "lesions": ph.lesions,
    }
    atomic_write_text(pdir / "pair.json", json.dumps({**entry, "noise": noise_info}, indent=2))
    log.info("wrote %s (%d slices, %dx%d)", pid, n_slices, size, size)
    return entry, noise_info
