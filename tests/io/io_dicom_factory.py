"""Test factory: small synthetic CT series written as real DICOM files, with known HU.

Every knob a vendor turns is a parameter (rescale, signedness, BitsStored with junk high bits,
padding tagged or not, MONOCHROME1, compression, orientation, positions), so tests compare
what the reader returns with the HU the factory started from.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def phantom_hu(n: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Integer-valued HU volume: air, a water disc, a bone spot, lung-like noise (Z, Y, X)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    r = np.hypot(yy - rows / 2, xx - cols / 2)
    vol = np.full((n, rows, cols), -1000.0)
    for k in range(n):
        sl = vol[k]
        sl[r < rows * 0.4] = 40 + 10 * k
        sl[r < rows * 0.1] = 1200
        lung = (r > rows * 0.2) & (r < rows * 0.3)
        sl[lung] = -800 + rng.integers(-60, 60, size=int(lung.sum()))
    return vol


def fov_mask(rows: int, cols: int) -> np.ndarray:
    """True outside the reconstruction circle (where scanners pad)."""
    yy, xx = np.mgrid[:rows, :cols]
    return np.hypot(yy - (rows - 1) / 2, xx - (cols - 1) / 2) > min(rows, cols) / 2 - 0.5


@dataclass
class SeriesSpec:
    """What was written: files and the HU/mask a correct reader must return (sorted by z)."""

    paths: list[Path]
    hu: np.ndarray
    padding: np.ndarray
    study_uid: str
    series_uid: str
    positions: list[tuple[float, float, float]]
    extra: dict[str, object] = field(default_factory=dict)


def make_series(
    out_dir: Path,
    *,
    n_slices: int = 4,
    rows: int = 24,
    cols: int = 20,
    hu: np.ndarray | None = None,
    spacing: tuple[float, float, float] = (2.5, 0.75, 0.8),  # (z, y, x) mm
    origin: Sequence[float] = (-8.0, -9.0, -40.0),
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    positions: Sequence[Sequence[float]] | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    bits_allocated: int = 16,
    bits_stored: int = 16,
    pixel_representation: int = 1,
    junk_high_bits: bool = False,
    padding_stored: int | None = None,
    tag_padding: bool = True,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = ExplicitVRLittleEndian,
    modality: str = "CT",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    sop_class: str = CTImageStorage,
    study_uid: str | None = None,
    series_uid: str | None = None,
    patient_id: str = "PAT001",
    description: str = "test series",
    series_number: int = 1,
    shuffle: bool = True,
    names: str = "random",  # "random" (no extension) | "dcm" | "instance"
    seed: int = 0,
    per_slice_intercept: Sequence[float] | None = None,
    omit_rescale: bool = False,
    extra_tags: dict[str, object] | None = None,
) -> SeriesSpec:
    """Write a CT series into ``out_dir`` and return what a reader must find."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    hu = phantom_hu(n_slices, rows, cols, seed) if hu is None else np.asarray(hu, dtype=float)
    n_slices = hu.shape[0]
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    direction = _direction(orientation)
    if positions is None:
        o = np.asarray(origin, dtype=float)
        positions = [tuple(o + k * spacing[0] * direction[:, 2]) for k in range(n_slices)]
    pad = fov_mask(rows, cols) if padding_stored is not None else np.zeros((rows, cols), bool)
    expected = np.empty_like(hu)
    paths: list[Path] = []
    order = list(range(n_slices))
    if shuffle:
        rng.shuffle(order)
    frame_uid = generate_uid()
    for written, k in enumerate(order):
        icpt = per_slice_intercept[k] if per_slice_intercept is not None else intercept
        stored = np.round((hu[k] - icpt) / slope).astype(np.int64)
        expected[k] = np.where(pad, -1000.0, stored * slope + icpt)  # what the file can hold
        if padding_stored is not None:
            stored[pad] = padding_stored
        arr = _to_words(stored, bits_allocated, bits_stored, pixel_representation, junk_high_bits)
        ds = _dataset(
            arr, rows, cols, bits_allocated, bits_stored, pixel_representation, photometric
        )
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientID = patient_id
        ds.PatientName = f"Test^{patient_id}"
        ds.Modality = modality
        ds.ImageType = list(image_type)
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = n_slices - k  # deliberately reversed: never sort by it
        ds.ImagePositionPatient = [round(float(v), 4) for v in positions[k]]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        if not omit_rescale:
            ds.RescaleSlope = slope
            ds.RescaleIntercept = icpt
            ds.RescaleType = "HU"
        if padding_stored is not None and tag_padding:
            ds.PixelPaddingValue = int(padding_stored)
        for key, val in (extra_tags or {}).items():
            setattr(ds, key, val)
        name = {
            "random": f"{rng.getrandbits(40):010x}",
            "dcm": f"slice_{written:04d}.dcm",
            "instance": f"IM{ds.InstanceNumber:05d}",
        }[names]
        path = out_dir / name
        _save(ds, path, transfer_syntax)
        paths.append(path)
    return SeriesSpec(paths, expected, np.broadcast_to(pad, hu.shape).copy(), study_uid,
                      series_uid, [tuple(map(float, p)) for p in positions])  # fmt: skip


def make_enhanced(
    out_path: Path,
    *,
    n_frames: int = 3,
    rows: int = 16,
    cols: int = 16,
    slopes: Sequence[float] = (1.0, 2.0, 0.5),
    intercepts: Sequence[float] = (-1024.0, -1000.0, 0.0),
    spacing: tuple[float, float, float] = (3.0, 0.5, 0.5),
    shared_rescale: bool = False,
) -> SeriesSpec:
    """One Enhanced CT file whose frames carry their own rescale (functional groups)."""
    hu = phantom_hu(n_frames, rows, cols, seed=3)
    frames = []
    for k in range(n_frames):
        s, i = (slopes[0], intercepts[0]) if shared_rescale else (slopes[k], intercepts[k])
        frames.append(np.round((hu[k] - i) / s).astype(np.int16))
        hu[k] = frames[-1] * s + i  # the HU the file can represent
    ds = _dataset(np.stack(frames), rows, cols, 16, 16, 1, "MONOCHROME2")
    ds.SOPClassUID = ENHANCED_CT
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "ENH01", "Enhanced^Test", "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = n_frames
    ds.SeriesDescription = "enhanced"
    # deliberately misleading top-level rescale: the functional groups win
    ds.RescaleSlope, ds.RescaleIntercept = 7.0, 7.0
    shared = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = DicomSequence([po])
    pm = Dataset()
    pm.PixelSpacing = [spacing[1], spacing[2]]
    pm.SliceThickness = spacing[0]
    shared.PixelMeasuresSequence = DicomSequence([pm])
    if shared_rescale:
        shared.PixelValueTransformationSequence = DicomSequence(
            [_rescale(slopes[0], intercepts[0])]
        )
    per_frame = []
    order = list(range(n_frames))[::-1]  # frames stored top-down: the reader must sort
    ds.PixelData = np.stack([frames[k] for k in order]).astype("<i2").tobytes()
    positions = [(0.0, 0.0, k * spacing[0]) for k in range(n_frames)]
    for k in order:
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = list(positions[k])
        item.PlanePositionSequence = DicomSequence([pp])
        if not shared_rescale:
            item.PixelValueTransformationSequence = DicomSequence(
                [_rescale(slopes[k], intercepts[k])]
            )
        per_frame.append(item)
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _save(ds, out_path, ExplicitVRLittleEndian)
    return SeriesSpec([out_path], hu, np.zeros(hu.shape, bool), ds.StudyInstanceUID,
                      ds.SeriesInstanceUID, positions)  # fmt: skip


def make_other(out_path: Path, kind: str, study_uid: str | None = None) -> Path:
    """Non-CT-image objects a real export folder contains: 'sr', 'sc', 'mr', 'nopixels'."""
    ds = Dataset()
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "PAT001"
    if kind == "sr":
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"  # X-Ray Radiation Dose SR
        ds.Modality = "SR"
    elif kind in ("sc", "mr"):
        arr = np.zeros((8, 8), np.int16)
        ds.update(_dataset(arr, 8, 8, 16, 16, 1, "MONOCHROME2"))
        ds.SOPClassUID = (
            "1.2.840.10008.5.1.4.1.1.7" if kind == "sc" else "1.2.840.10008.5.1.4.1.1.4"
        )
        ds.Modality = "OT" if kind == "sc" else "MR"
    elif kind == "nopixels":
        ds.SOPClassUID = CTImageStorage
        ds.Modality = "CT"
        ds.Rows, ds.Columns = 8, 8
    else:
        raise ValueError(kind)
    _save(ds, out_path, ExplicitVRLittleEndian)
    return out_path


# ------------------------------------------------------------------------------------ helpers


def _direction(orientation: Sequence[float]) -> np.ndarray:
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return np.stack([row, col, np.cross(row, col)], axis=1)


def _to_words(stored: np.ndarray, ba: int, bs: int, pr: int, junk: bool) -> np.ndarray:
    lo, hi = (-(2 ** (bs - 1)), 2 ** (bs - 1) - 1) if pr else (0, 2**bs - 1)
    if stored.min() < lo or stored.max() > hi:
        raise ValueError(f"stored values {stored.min()}..{stored.max()} exceed {bs} bits")
    words = stored & ((1 << bs) - 1)  # two's complement in bs bits
    if junk and bs < ba:
        words = words | (0b1010 << bs) & ((1 << ba) - 1)  # garbage above BitsStored
    elif pr and bs < ba:
        words = np.where(stored < 0, words | (((1 << ba) - 1) ^ ((1 << bs) - 1)), words)
    return words.astype(f"<u{ba // 8}")


def _dataset(
    arr: np.ndarray, rows: int, cols: int, ba: int, bs: int, pr: int, photometric: str
) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = ba, bs, bs - 1
    ds.PixelRepresentation = pr
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    return ds


def _rescale(slope: float, intercept: float) -> Dataset:
    item = Dataset()
    item.RescaleSlope, item.RescaleIntercept, item.RescaleType = slope, intercept, "HU"
    return item


def _save(ds: Dataset, path: Path, transfer_syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    if transfer_syntax in (ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        meta.TransferSyntaxUID = transfer_syntax
    elif transfer_syntax != ExplicitVRLittleEndian and "PixelData" in ds:
        ds.compress(transfer_syntax)
    ds.save_as(path, enforce_file_format=True)
