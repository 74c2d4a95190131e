"""Synthetic paired CT for the data tests: in-memory volumes and tiny DICOM trees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.io.volume import CTVolume

SPACING = (2.0, 0.75, 0.75)
ORIGIN = (-24.0, -24.0, 100.0)


def phantom_hu(n_slices: int, size: int, seed: int, noise_sd: float) -> np.ndarray:
    """Integer-valued HU: air around an elliptic soft-tissue body with a bone and a lung insert."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2.0
    body = ((yy - c) / (0.42 * size)) ** 2 + ((xx - c) / (0.36 * size)) ** 2 <= 1.0
    bone = (yy - c * 0.8) ** 2 + (xx - c * 1.2) ** 2 <= (0.06 * size) ** 2
    lung = (yy - c * 1.2) ** 2 + (xx - c * 0.8) ** 2 <= (0.08 * size) ** 2
    sl = np.where(body, 40.0, -1000.0).astype(np.float32)
    sl[bone], sl[lung] = 700.0, -800.0
    vol = np.repeat(sl[None], n_slices, axis=0)
    vol += np.arange(n_slices, dtype=np.float32)[:, None, None] * body  # slices differ
    vol = vol + rng.normal(0.0, noise_sd, vol.shape).astype(np.float32) * body
    return np.round(vol).astype(np.float32)


def make_volume(hu: np.ndarray, *, origin=ORIGIN, spacing=SPACING, direction=None, meta=None):
    return CTVolume(
        hu=hu,
        spacing_mm=spacing,
        origin_mm=origin,
        direction=np.eye(3) if direction is None else direction,
        meta=dict(meta or {}),
    )


@pytest.fixture
def volume_pair() -> Callable[..., tuple[CTVolume, CTVolume]]:
    """Factory: (low, full) volumes of one synthetic patient with identical geometry."""

    def _make(n_slices: int = 6, size: int = 64, seed: int = 0, low_sd: float = 40.0):
        full = phantom_hu(n_slices, size, seed, noise_sd=8.0)
        rng = np.random.default_rng(seed + 1000)
        low = np.round(full + rng.normal(0.0, low_sd, full.shape)).astype(np.float32)
        low[full <= -1000] = -1000.0
        meta = {"PatientID": f"P{seed}", "FrameOfReferenceUID": f"1.2.3.{seed}"}
        return make_volume(low, meta=meta), make_volume(full, meta=meta)

    return _make


@pytest.fixture
def write_dicom_pair() -> Callable[..., tuple[Path, Path]]:
    """Factory: write a (low, full) pair as DICOM series into two folders."""
    from pipeline.io.write import write_new_series

    def _write(
        low_dir: Path,
        full_dir: Path,
        *,
        patient: str = "P0",
        n_slices: int = 4,
        size: int = 48,
        seed: int = 0,
        low_desc: str = "Low Dose Images",
        full_desc: str = "Full Dose Images",
        full_origin: tuple[float, float, float] = ORIGIN,
        low_sd: float = 40.0,
    ) -> tuple[Path, Path]:
        full = phantom_hu(n_slices, size, seed, noise_sd=8.0)
        rng = np.random.default_rng(seed + 1000)
        low = np.round(full + rng.normal(0.0, low_sd, full.shape)).astype(np.float32)
        study = f"1.2.826.0.1.3680043.8.498.{seed + 1}"
        for hu, d, desc, num, origin in (
            (low, low_dir, low_desc, 2, ORIGIN),
            (full, full_dir, full_desc, 1, full_origin),
        ):
            write_new_series(
                hu,
                SPACING,
                origin,
                np.eye(3),
                d,
                patient_id=patient,
                patient_name=patient,
                study_uid=study,
                series_description=desc,
                series_number=num,
                frame_of_reference_uid=study + ".1",
            )
        return low_dir, full_dir

    return _write
