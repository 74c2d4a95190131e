"""Decode the planes of a sorted series straight into one (Z, Y, X) array of stored values.

Fast path (the common case: single-frame, uncompressed files of one pixel format): every
file's pixel bytes are read with ``readinto`` directly into its slot of a preallocated
array by a few threads (file reads release the GIL), then masked/sign-extended once for the
whole volume. Anything else goes through :func:`pipeline.io.decode.decode_jobs` (compressed
files in isolated parallel workers) and is copied into place.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.io.decode import DecodeJob, decode_jobs, default_workers
from pipeline.io.header import FileHeader, FrameRef
from pipeline.io.hu import unpack_native

#: threads for native reads (I/O + memcpy; more than a few does not help)
MAX_IO_THREADS = 4


def decode_stack(
    files: dict[Path, FileHeader],
    frames: list[FrameRef],
    workers: int | None = None,
    *,
    isolate: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """Stored values (Z, Y, X) for ``frames`` in order, a per-plane ok mask, and skip records."""
    used = [files[p] for p in dict.fromkeys(f.path for f in frames)]
    formats = {(fh.byte_order, fh.bits_allocated, fh.bits_stored, fh.pixel_representation)
               for fh in used}  # fmt: skip
    if len(formats) == 1 and all(fh.byte_order and fh.number_of_frames == 1 for fh in used):
        return _native_stack(files, frames, workers)
    return _generic_stack(files, frames, workers, isolate)


def _native_stack(
    files: dict[Path, FileHeader], frames: list[FrameRef], workers: int | None
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    first = files[frames[0].path]
    dtype = np.dtype(f"{first.byte_order}u{first.bits_allocated // 8}")
    raw = np.empty((len(frames), first.rows, first.columns), dtype=dtype)
    nbytes = raw[0].nbytes

    def read_one(k: int) -> str | None:
        fh = files[frames[k].path]
        try:
            with open(fh.path, "rb") as fp:
                fp.seek(int(fh.pixel_offset or 0))
                got = fp.readinto(memoryview(raw[k]).cast("B"))
        except OSError as exc:
            return f"cannot read pixel data ({exc.strerror or exc})"
        if got != nbytes:
            return f"pixel data ended after {got} of {nbytes} bytes (file changed since scan?)"
        return None

    threads = max(1, min(MAX_IO_THREADS, workers or default_workers(), len(frames)))
    if threads == 1:
        errors = [read_one(k) for k in range(len(frames))]
    else:
        with ThreadPoolExecutor(threads) as pool:
            errors = list(pool.map(read_one, range(len(frames))))
    ok = np.array([e is None for e in errors], dtype=bool)
    skipped = [
        {"path": str(frames[k].path), "reason": e} for k, e in enumerate(errors) if e is not None
    ]
    stored = unpack_native(raw, first.bits_stored, first.pixel_representation)
    return stored, ok, skipped


def _generic_stack(
    files: dict[Path, FileHeader], frames: list[FrameRef], workers: int | None, isolate: bool
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    paths = list(dict.fromkeys(f.path for f in frames))
    results = dict(
        zip(paths, decode_jobs([job_for(files[p]) for p in paths], workers, isolate=isolate),
            strict=True)
    )  # fmt: skip
    arrays = [r for r in results.values() if not isinstance(r, str)]
    dtype = np.result_type(*arrays) if arrays else np.dtype(np.int16)
    first = files[frames[0].path]
    stored = np.zeros((len(frames), first.rows, first.columns), dtype=dtype)
    ok = np.zeros(len(frames), dtype=bool)
    for k, fr in enumerate(frames):
        res = results[fr.path]
        if not isinstance(res, str):
            stored[k] = res[fr.frame or 0]
            ok[k] = True
    skipped = [{"path": str(p), "reason": r} for p, r in results.items() if isinstance(r, str)]
    return stored, ok, skipped


def job_for(fh: FileHeader) -> DecodeJob:
    """The decode job of one file (native offset when the header scan found one)."""
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
