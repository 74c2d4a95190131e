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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DicomError
from pipeline.intensity import AIR_HU
from pipeline.io.decode import default_workers
from pipeline.io.discover import ScanResult, SeriesRecord, scan
from pipeline.io.geometry import header_warnings, sort_slices
from pipeline.io.header import FileHeader, FrameRef
from pipeline.io.hu import (
    HuStats,
    padding_mask,
    padding_spec,
    plausibility_problem,
    stored_to_hu,
)
from pipeline.io.stack import decode_stack
from pipeline.io.tags import value
from pipeline.io.volume import CTVolume, SliceInfo

log = logging.getLogger(__name__)

#: slices per HU-conversion task (a few MB: cache-friendly, enough tasks for every core)
HU_CHUNK = 8
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
    "CTDIvol",
    "LossyImageCompression",
)


def read_series(
    record: SeriesRecord,
    workers: int | None = None,
    *,
    isolate: bool = True,
    check_plausible: bool = True,
) -> CTVolume:
    """Decode and assemble one series; undecodable files are skipped with their reason.

    ``workers`` bounds the decoder processes (default: all cores); ``isolate=False`` decodes
    compressed files in this process (faster start, no protection against decoder crashes).
    A series whose HU are not plausible CT numbers is refused with a :class:`DicomError`
    (:func:`pipeline.io.hu.plausibility_problem`); ``check_plausible=False`` reads it anyway
    (for derived data known to be extreme, e.g. a test's deliberately clipped output).
    """
    if record.errors:
        raise DicomError(
            f"series {record.label} refused: " + "; ".join(record.errors),
            path=record.files[0].path.parent,
        )
    by_path = {fh.path: fh for fh in record.files}
    thickness = _float(value(record.files[0].header, "SliceThickness"))
    # geometry comes from the headers: sort first, then decode straight into place
    every = record.frames  # a property that builds the list: once, not once per slice
    geom = sort_slices(every, default_thickness_mm=thickness)
    frames = [every[i] for i in geom.order]
    stored, ok, skipped = decode_stack(by_path, frames, workers, isolate=isolate)
    if not ok.all():
        frames = [f for f, good in zip(frames, ok, strict=True) if good]
        if not frames:
            first = skipped[0]["reason"] if skipped else "no files"
            raise DicomError(
                f"no slice of series {record.label} could be decoded ({len(skipped)} file(s); "
                f"first: {first})",
                path=record.files[0].path.parent,
            )
        stored = stored[ok]
        geom = sort_slices(frames, default_thickness_mm=thickness)  # now with the gaps
    hu, mask, stats = _to_hu(stored, frames, workers)
    head = by_path[frames[0].path]
    problem = plausibility_problem(
        stats, {f.rescale for f in frames}, head.pixel_representation, head.bits_stored
    )
    if problem and check_plausible:
        raise DicomError(
            f"series {record.label} refused: implausible pixel values: {problem}",
            path=record.files[0].path.parent,
        )
    skipped, warnings = _skipped_and_warnings(record, skipped, geom.warnings, frames)
    meta = _meta(record, by_path[frames[0].path])
    meta["skipped_files"] = skipped
    meta["RescaleSources"] = sorted({f.rescale.source for f in frames})
    return CTVolume(
        hu=hu,
        spacing_mm=geom.spacing_mm,
        origin_mm=geom.origin_mm,
        direction=geom.direction,
        padding_mask=mask,
        slices=[_slice_info(f) for f in frames],
        meta=meta,
        warnings=warnings,
    )


def _skipped_and_warnings(
    record: SeriesRecord, skipped: list[dict[str, Any]], geometry: list[str], frames: list[FrameRef]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every file left out (scan stage first, then decode) and the series' warnings, logged."""
    for s in skipped:
        s["stage"] = "decode"
    skipped = [
        {"path": str(s.path), "reason": s.reason, "stage": "scan"} for s in record.lost
    ] + skipped
    warnings = list(record.warnings)
    warnings += [
        f"skipped {Path(s['path']).name}: {s['reason']}" for s in skipped if s["stage"] != "scan"
    ]
    warnings += geometry + header_warnings(frames)
    for w in warnings:
        log.info("%s: %s", record.label, w)
    return skipped, warnings


def _slice_info(f: FrameRef) -> SliceInfo:
    return SliceInfo(
        path=f.path,
        sop_instance_uid=f.sop_instance_uid,
        position_mm=f.position_mm,
        rescale_slope=f.rescale.slope,
        rescale_intercept=f.rescale.intercept,
        header=f.header,
        frame=f.frame,
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


def _to_hu(
    stored: np.ndarray, frames: list[FrameRef], workers: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[HuStats]]:
    """HU, padding mask and plausibility stats, vectorised over runs of planes that share
    rescale and padding.

    Contiguous runs are converted in place, in chunks of slices spread over a few threads
    (numpy releases the GIL), so the conversion runs at memory speed on every core.
    """
    keys = [(f.rescale, padding_spec(f.header)) for f in frames]
    hu = np.empty(stored.shape, dtype=np.float32)
    mask = np.empty(stored.shape, dtype=bool)
    tasks: list[tuple[Any, Any, Any]] = []
    for (rescale, spec), idx in _groups(keys):
        if idx[-1] - idx[0] + 1 == len(idx):  # contiguous run: chunks of in-place views
            for start in range(idx[0], idx[-1] + 1, HU_CHUNK):
                tasks.append((slice(start, min(start + HU_CHUNK, idx[-1] + 1)), rescale, spec))
        else:
            tasks.append((idx, rescale, spec))

    def convert(task: tuple[Any, Any, Any]) -> HuStats:
        sel, rescale, spec = task
        if isinstance(sel, slice):
            h, m = hu[sel], mask[sel]
            with np.errstate(over="ignore", invalid="ignore"):  # judged by the stats below
                stored_to_hu(stored[sel], rescale, out=h)
            if padding_mask(stored[sel], rescale, spec, out=m).any():
                np.copyto(h, np.float32(AIR_HU), where=m)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                h = stored_to_hu(stored[sel], rescale)
            m = padding_mask(stored[sel], rescale, spec)
            h[m] = AIR_HU
            hu[sel], mask[sel] = h, m
        return HuStats.of(h, m)

    threads = min(len(tasks), workers or default_workers(), 8)
    if threads <= 1:
        stats = [convert(task) for task in tasks]
    else:
        with ThreadPoolExecutor(threads) as pool:
            stats = list(pool.map(convert, tasks))
    return hu, mask, stats


def _groups(keys: list[Any]) -> Iterable[tuple[Any, list[int]]]:
    out: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return out.items()


def _meta(record: SeriesRecord, fh: FileHeader) -> dict[str, Any]:
    ds = fh.header
    meta: dict[str, Any] = {}
    for name in META_TAGS:
        meta[name] = _plain(value(ds, name))
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
