"""Read a scanned CT series into a :class:`CTVolume` of HU (float32, z/y/x).

``read_series(record)`` decodes every plane (native pixels straight from the file, compressed
ones in parallel isolated workers), drops planes that cannot be decoded (each named in the
volume's warnings and ``meta["skipped_files"]``), sorts along the slice normal, converts to HU
with each plane's own rescale and maps padding to air with a mask. ``read_volume(path)`` does
scan + read for a folder (or file) that holds exactly one CT series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DicomError
from pipeline.io.decode import DecodeJob, decode_jobs
from pipeline.io.discover import ScanResult, SeriesRecord, scan
from pipeline.io.geometry import sort_slices
from pipeline.io.header import FileHeader, FrameRef
from pipeline.io.hu import PADDING_HU, padding_mask, padding_spec, stored_to_hu
from pipeline.io.volume import CTVolume, SliceInfo

log = logging.getLogger(__name__)

#: header tags copied into ``CTVolume.meta`` (from the first file of the series)
META_TAGS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "SeriesDescription",
    "SeriesNumber",
    "StudyDescription",
    "StudyDate",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "BitsStored",
    "BitsAllocated",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "SliceThickness",
    "KVP",
    "ConvolutionKernel",
)


def read_series(
    record: SeriesRecord, workers: int | None = None, *, isolate: bool = True
) -> CTVolume:
    """Decode and assemble one series; undecodable files are skipped with their reason.

    ``workers`` bounds the decoder processes (default: all cores); ``isolate=False`` decodes
    compressed files in this process (faster start, no protection against decoder crashes).
    """
    jobs = [_job(fh) for fh in record.files]
    decoded = decode_jobs(jobs, workers, isolate=isolate)
    frames: list[FrameRef] = []
    planes: list[np.ndarray] = []
    skipped: list[dict[str, str]] = []
    for fh, res in zip(record.files, decoded, strict=True):
        if isinstance(res, str):
            skipped.append({"path": str(fh.path), "reason": res})
            continue
        for fr in fh.frames:
            frames.append(fr)
            planes.append(res[fr.frame or 0])
    if not frames:
        first = skipped[0]["reason"] if skipped else "no files"
        raise DicomError(
            f"no slice of series {record.label} could be decoded ({len(skipped)} file(s); "
            f"first: {first})",
            path=record.files[0].path.parent if record.files else None,
        )
    thickness = _float(record.files[0].header.get("SliceThickness"))
    geom = sort_slices(frames, default_thickness_mm=thickness)
    frames = [frames[i] for i in geom.order]
    stored = np.stack([planes[i] for i in geom.order])
    hu, mask = _to_hu(stored, frames)
    by_path = {fh.path: fh for fh in record.files}
    warnings = list(record.warnings)
    warnings += [f"skipped {Path(s['path']).name}: {s['reason']}" for s in skipped]
    warnings += geom.warnings
    for w in warnings:
        log.info("%s: %s", record.label, w)
    meta = _meta(record, by_path[frames[0].path])
    meta["skipped_files"] = skipped
    meta["RescaleSources"] = sorted({f.rescale.source for f in frames})
    return CTVolume(
        hu=hu,
        spacing_mm=geom.spacing_mm,
        origin_mm=geom.origin_mm,
        direction=geom.direction,
        padding_mask=mask,
        slices=[
            SliceInfo(
                path=f.path,
                sop_instance_uid=f.sop_instance_uid,
                position_mm=f.position_mm,
                rescale_slope=f.rescale.slope,
                rescale_intercept=f.rescale.intercept,
                header=f.header,
                frame=f.frame,
            )
            for f in frames
        ],
        meta=meta,
        warnings=warnings,
    )


def read_volume(path: str | Path, workers: int | None = None) -> CTVolume:
    """Read the one CT series under ``path`` (folder or file); DicomError if none or several."""
    result = scan([path])
    return read_series(only_series(result, path), workers)


def only_series(result: ScanResult, path: str | Path) -> SeriesRecord:
    """The single series of a scan, or a DicomError that says what was found instead."""
    if not result.series:
        reasons = "; ".join(f"{s.path.name}: {s.reason}" for s in result.skipped[:3])
        more = f" (+{len(result.skipped) - 3} more)" if len(result.skipped) > 3 else ""
        raise DicomError(
            f"no readable CT series found ({len(result.skipped)} file(s) skipped"
            + (f": {reasons}{more}" if reasons else "")
            + ")",
            path=path,
        )
    if len(result.series) > 1:
        listing = "; ".join(
            f"{r.label} '{r.description}' ({r.n_slices} slices)" for r in result.series[:5]
        )
        raise DicomError(
            f"{len(result.series)} CT series found, expected exactly one: {listing}. "
            "Point at one series folder.",
            path=path,
        )
    return result.series[0]


def _job(fh: FileHeader) -> DecodeJob:
    return DecodeJob(
        path=fh.path,
        rows=fh.rows,
        columns=fh.columns,
        n_frames=fh.number_of_frames,
        bits_allocated=fh.bits_allocated,
        bits_stored=fh.bits_stored,
        pixel_representation=fh.pixel_representation,
        transfer_syntax=fh.transfer_syntax,
        byte_order=fh.byte_order,
        offset=fh.pixel_offset,
    )


def _to_hu(stored: np.ndarray, frames: list[FrameRef]) -> tuple[np.ndarray, np.ndarray]:
    """HU and padding mask, vectorised over runs of planes that share rescale and padding."""
    keys = [(f.rescale, _padding_key(f)) for f in frames]
    hu = np.empty(stored.shape, dtype=np.float32)
    mask = np.empty(stored.shape, dtype=bool)
    for key, idx in _groups(keys):
        rescale, spec = key
        sel: Any = slice(idx[0], idx[-1] + 1) if idx[-1] - idx[0] + 1 == len(idx) else idx
        h = stored_to_hu(stored[sel], rescale)
        m = padding_mask(stored[sel], h, spec)
        h[m] = PADDING_HU
        hu[sel] = h
        mask[sel] = m
    return hu, mask


def _padding_key(frame: FrameRef) -> tuple[int, int] | None:
    return padding_spec(frame.header)


def _groups(keys: list[Any]) -> Iterable[tuple[Any, list[int]]]:
    out: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return out.items()


def _meta(record: SeriesRecord, fh: FileHeader) -> dict[str, Any]:
    ds = fh.header
    meta: dict[str, Any] = {}
    for name in META_TAGS:
        value = ds.get(name)
        meta[name] = _plain(value)
    meta["StudyInstanceUID"] = meta["StudyInstanceUID"] or record.study_uid
    meta["SeriesInstanceUID"] = meta["SeriesInstanceUID"] or record.series_uid
    spec = padding_spec(ds)
    meta["PixelPaddingValue"] = spec[0] if spec else None
    meta["PixelPaddingRangeLimit"] = spec[1] if spec and spec[1] != spec[0] else None
    meta["TransferSyntaxUID"] = fh.transfer_syntax
    meta["TransferSyntaxes"] = record.transfer_syntaxes
    meta["Rows"], meta["Columns"] = fh.rows, fh.columns
    meta["BitsStored"], meta["BitsAllocated"] = fh.bits_stored, fh.bits_allocated
    meta["PixelRepresentation"] = fh.pixel_representation
    meta["SeriesPart"] = record.part
    return meta


def _plain(value: Any) -> Any:
    """JSON-friendly copy of a header value (PersonName/UID/MultiValue -> str/list)."""
    if value is None:
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    return str(value)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
