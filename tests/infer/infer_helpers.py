"""Test helpers for the denoising tests: tiny DICOM series, checkpoints, hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import torch

from pipeline.io.write import write_new_series
from pipeline.models.checkpoint import save_checkpoint
from pipeline.models.registry import build_model


def phantom(n_slices: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Integer HU: air, a soft-tissue ellipse with noise, a bone disc (Z, Y, X)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols].astype(np.float32)
    cy, cx = (rows - 1) / 2, (cols - 1) / 2
    body = ((yy - cy) / (0.42 * rows)) ** 2 + ((xx - cx) / (0.42 * cols)) ** 2 <= 1
    bone = (yy - cy) ** 2 + (xx - cx) ** 2 <= (0.08 * min(rows, cols)) ** 2
    sl = np.where(body, 40.0, -1000.0)
    sl[bone] = 900.0
    vol = np.repeat(sl[None], n_slices, axis=0)
    vol = vol + rng.normal(0, 25, vol.shape) * body
    return np.round(vol).astype(np.float32)


def write_series(
    folder: Path,
    *,
    n_slices: int = 3,
    rows: int = 32,
    cols: int = 32,
    patient_id: str = "P1",
    description: str = "AXIAL 2mm",
    series_number: int = 2,
    study_uid: str | None = None,
    seed: int = 0,
    padding: bool = False,
    bits_stored: int = 16,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
) -> list[Path]:
    """Write an original CT series with the project writer; returns the file paths."""
    hu = phantom(n_slices, rows, cols, seed)
    mask = None
    if padding:
        yy, xx = np.mgrid[:rows, :cols]
        circle = np.hypot(yy - (rows - 1) / 2, xx - (cols - 1) / 2) > min(rows, cols) / 2 - 0.5
        mask = np.repeat(circle[None], n_slices, axis=0)
    written = write_new_series(
        hu,
        (2.0, 0.7, 0.7),
        (-10.0, -12.0, 30.0 + seed),
        np.eye(3),
        folder,
        patient_id=patient_id,
        patient_name="Test^Patient",
        study_uid=study_uid,
        series_description=description,
        series_number=series_number,
        uid_key=f"{description}|{seed}",
        padding_mask=mask,
        bits_stored=bits_stored,
        image_type=image_type,
    )
    return written.paths


def compress_rle(paths: list[Path]) -> None:
    """Re-encode files in place as RLE Lossless (a compressed transfer syntax)."""
    from pydicom.uid import RLELossless

    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless)
        ds.save_as(p)


def truncate(path: Path, keep: int = 600) -> None:
    """Corrupt a file by cutting it inside its header/pixels."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def identity_checkpoint(path: Path, channels: int = 4) -> Path:
    """An untrained residual DRL-E (zero last conv): its output equals its input exactly."""
    model = build_model("drle", channels=channels)
    return save_checkpoint(path, model, {"name": "drle", "params": {"channels": channels}})


def smoothing_checkpoint(path: Path, channels: int = 4, seed: int = 0) -> Path:
    """A DRL-E whose last conv is random: a non-identity model with a real receptive field."""
    torch.manual_seed(seed)
    model = build_model("drle", channels=channels)
    torch.nn.init.normal_(model.out.weight, std=0.01)
    return save_checkpoint(path, model, {"name": "drle", "params": {"channels": channels}})


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative names)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def dciodvfy_errors(path: Path) -> set[str]:
    """dciodvfy's Error lines for one file (the verifier prints everything on stderr)."""
    import subprocess

    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return {ln.strip() for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")}


def corner_positions(img: object) -> np.ndarray:
    """World (LPS) positions of the 8 corner voxel centres of a SimpleITK image, sorted."""
    import itertools

    size = img.GetSize()  # type: ignore[attr-defined]
    pts = [
        img.TransformContinuousIndexToPhysicalPoint([float(c) for c in idx])  # type: ignore[attr-defined]
        for idx in itertools.product(*[(0, n - 1) for n in size])
    ]
    return np.array(sorted(np.round(pts, 2).tolist()))
