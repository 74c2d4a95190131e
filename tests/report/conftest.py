"""A tiny evaluated cohort shared by the report tests (built once per session).

Two phantom patients; the "denoised" series is a Gaussian-smoothed low-dose series written with
the project's DICOM writer, and patient 2 additionally carries an injected 15 HU checkerboard
(period 2 px), which the grid detector must flag and the report must show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi


@dataclass
class EvaluatedCohort:
    root: Path
    cohort: Path
    denoised: Path
    evaluation: Path
    identifiers: set[str]
    grid_patient: str


@pytest.fixture(scope="session")
def evaluated_cohort(tmp_path_factory: pytest.TempPathFactory) -> EvaluatedCohort:
    from pipeline.evaluate.runner import evaluate
    from pipeline.io.read import read_volume
    from pipeline.io.write import write_derived_series
    from pipeline.simulate.cohort import make_demo_cohort

    root = tmp_path_factory.mktemp("report-cohort")
    cohort = root / "cohort"
    make_demo_cohort(cohort, n_patients=2, n_slices=4, size=96, seed=3)
    denoised = root / "denoised"
    identifiers: set[str] = set()
    patients = sorted(p for p in cohort.iterdir() if p.is_dir())
    grid_patient = patients[1].name
    for p in patients:
        low_dir = next(d for d in p.iterdir() if d.is_dir() and d.name != "full_dose")
        vol = read_volume(low_dir)
        identifiers |= {str(vol.meta["PatientID"]), str(vol.meta["PatientName"])}
        hu = ndi.gaussian_filter(vol.hu, sigma=(0, 0.8, 0.8))
        if p.name == grid_patient:
            yy, xx = np.mgrid[: hu.shape[1], : hu.shape[2]]
            hu = hu + 15.0 * ((-1.0) ** (yy + xx))[None]
        write_derived_series(
            vol,
            hu.astype(np.float32),
            denoised / p.name,
            series_description="smoothed (test)",
            derivation_description="gaussian sigma 0.8 px (test fixture)",
            uid_key="report-test",
        )
    evaluation = root / "evaluation"
    evaluate(cohort, evaluation, full=cohort, denoised=denoised, command="test fixture")
    return EvaluatedCohort(root, cohort, denoised, evaluation, identifiers, grid_patient)
