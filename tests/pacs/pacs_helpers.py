"""Helpers for the PACS tests: tiny CT studies, a tiny denoiser checkpoint, DICOM peers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import torch

from pipeline.io.write import write_new_series
from pipeline.models.checkpoint import save_checkpoint
from pipeline.models.registry import build_model


def ct_study(
    folder: Path,
    patient_id: str = "PACS1",
    n_slices: int = 4,
    size: int = 32,
    seed: int = 0,
    study_uid: str | None = None,
) -> list[Path]:
    """One original CT series (one study) of ``n_slices`` slices; returns its files."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    body = (yy - c) ** 2 + (xx - c) ** 2 <= (0.4 * size) ** 2
    sl = np.where(body, 40.0, -1000.0).astype(np.float32)
    hu = np.repeat(sl[None], n_slices, axis=0) + rng.normal(0, 20, (n_slices, size, size)) * body
    written = write_new_series(
        np.round(hu).astype(np.float32),
        (2.0, 0.7, 0.7),
        (-10.0, -10.0, 20.0 + seed),
        np.eye(3),
        folder,
        patient_id=patient_id,
        patient_name="Pacs^Test",
        study_uid=study_uid,
        series_description="AXIAL 2mm",
        series_number=2,
        uid_key=f"pacs-test|{patient_id}|{seed}",
    )
    return written.paths


def uids(path: Path) -> tuple[str, str, str]:
    """(study, series, sop) UIDs of a DICOM file."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def tiny_checkpoint(path: Path, channels: int = 4, seed: int = 0) -> Path:
    """A small DRL-E with a random last conv: a real (non-identity) model that runs in ms."""
    torch.manual_seed(seed)
    model = build_model("drle", channels=channels)
    torch.nn.init.normal_(model.out.weight, std=0.01)
    return save_checkpoint(path, model, {"name": "drle", "params": {"channels": channels}})
