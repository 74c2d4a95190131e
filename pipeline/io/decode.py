"""Pixel decoding to stored values: native fast path in-process, compressed in isolated workers.

* Uncompressed (native) pixel data is read straight from its byte offset (found by the header
  scan) with ``numpy.fromfile``, then masked to BitsStored and sign-extended -- no second
  header parse, which is where most of a DICOM reader's time goes.
* Compressed syntaxes (JPEG lossless, JPEG-LS, JPEG 2000, RLE, deflate) go through pydicom's
  ``pixel_array`` with the installed plugins (gdcm, pylibjpeg). C decoders can hang or crash on
  hostile input, so these run in a process pool: a crash or a hang costs that file (skipped
  with its reason), never the run. The pool also decodes in parallel.

Every failure is returned as a reason string instead of an array.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io.hu import unpack_native

log = logging.getLogger(__name__)

#: per-file decode time budget: this many seconds, plus DECODE_S_PER_MPIXEL per million
#: decoded pixels; a decoder that takes longer is declared hung and its file skipped
DECODE_TIMEOUT_S = float(os.environ.get("LDCT_DECODE_TIMEOUT_S", "30"))
DECODE_S_PER_MPIXEL = float(os.environ.get("LDCT_DECODE_S_PER_MPIXEL", "2"))
#: per-file decode memory budget (address space a worker may add while decoding one file):
#: 4 x the decoded size, at least this many MB; ``LDCT_DECODE_MEMORY_MB`` sets it outright
DECODE_MEMORY_MIN_MB = 512
DECODE_MEMORY_MB = float(os.environ.get("LDCT_DECODE_MEMORY_MB", "0"))
#: most files sent to a decoder process per round trip
FILES_PER_TASK = 8


@dataclass(frozen=True)
class DecodeJob:
    """Decode the frames of one file to stored values, shape (frames, rows, columns)."""

    path: Path
    rows: int
    columns: int
    n_frames: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    transfer_syntax: str
    #: native pixel data: byte order ('<'/'>') and offset; None -> decode with pydicom
    byte_order: str | None = None
    offset: int | None = None

    @property
    def native(self) -> bool:
        return self.byte_order is not None and self.offset is not None

    @property
    def decoded_bytes(self) -> int:
        return self.rows * self.columns * self.n_frames * max(1, self.bits_allocated // 8)


def time_budget_s(job: DecodeJob) -> float:
    """Seconds one file may take to decode in a worker."""
    pixels = job.rows * job.columns * job.n_frames
    return DECODE_TIMEOUT_S + DECODE_S_PER_MPIXEL * pixels / 1e6


def memory_budget_bytes(job: DecodeJob) -> int:
    """Address space one file's decoding may add to a worker."""
    if DECODE_MEMORY_MB > 0:
        return int(DECODE_MEMORY_MB * 2**20)
    return max(DECODE_MEMORY_MIN_MB * 2**20, 4 * job.decoded_bytes)


DecodeResult = np.ndarray | str


def default_workers() -> int:
    """CPU cores available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def decode_jobs(
    jobs: list[DecodeJob], workers: int | None = None, *, isolate: bool = True
) -> list[DecodeResult]:
    """Decode every job; results in job order, each an array or a failure reason."""
    results: list[DecodeResult | None] = [None] * len(jobs)
    compressed: list[int] = []
    for i, job in enumerate(jobs):
        if job.native:
            results[i] = _safe_decode(job)
        else:
            compressed.append(i)
    if compressed:
        sub = [jobs[i] for i in compressed]
        n = workers or default_workers()
        decoded = _decode_isolated(sub, n) if isolate else [_safe_decode(j) for j in sub]
        for i, res in zip(compressed, decoded, strict=True):
            results[i] = res
    return [r if r is not None else "not decoded" for r in results]


def decode_one(job: DecodeJob) -> np.ndarray:
    """Decode one file (raises on failure); runs in workers and in-process."""
    if job.native:
        return _decode_native(job)
    return _decode_pydicom(job)


def _worker_many(jobs: list[DecodeJob]) -> list[DecodeResult]:
    """Decode several files in one worker round trip; Python errors become reasons."""
    return [_captured(job) for job in jobs]


#: in worker processes: file that receives the C/Rust decoders' stderr chatter
_STDERR_FD: int | None = None


def _init_worker() -> None:
    """Worker start: send fd 2 to a private temp file, so decoder messages (openjpeg errors,
    Rust panic backtraces) do not spill onto the user's terminal but can join the reason."""
    global _STDERR_FD
    fd, name = tempfile.mkstemp(prefix="ldct-decoder-", suffix=".log")
    os.unlink(name)
    os.dup2(fd, 2)
    _STDERR_FD = fd


def _address_space() -> int | None:
    """This process's current virtual memory size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as fp:
            return int(fp.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def _memory_budget(job: DecodeJob) -> Iterator[int | None]:
    """In a worker: cap the address space at its current size + the job's budget.

    A decoder that needs more gets a failed allocation (MemoryError, or a crash that costs
    only this worker), never the machine's memory. Yields the budget in bytes (None when the
    limit cannot be set on this platform).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - non-POSIX
        yield None
        return
    now = _address_space()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    budget = memory_budget_bytes(job)
    if now is None:
        yield None
        return
    limit = now + budget if hard == resource.RLIM_INFINITY else min(hard, now + budget)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        yield None
        return
    try:
        yield budget
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _captured(job: DecodeJob) -> DecodeResult:
    start = os.lseek(_STDERR_FD, 0, os.SEEK_END) if _STDERR_FD is not None else 0
    with _memory_budget(job) as budget:
        result = _safe_decode(job)
    if isinstance(result, str) and budget and "MemoryError" in result:
        result += f" (over the decode memory budget of {budget / 2**20:.0f} MB for this file)"
    if isinstance(result, str) and _STDERR_FD is not None:
        end = os.lseek(_STDERR_FD, 0, os.SEEK_END)
        said = os.pread(_STDERR_FD, min(end - start, 4096), start).decode("utf-8", "replace")
        lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
        if lines:
            result += f" (decoder said: {lines[0][:200]})"
    return result


def _safe_decode(job: DecodeJob) -> DecodeResult:
    try:
        return decode_one(job)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # Rust decoders panic with a BaseException subclass
        return _reason(job, exc)


def _reason(job: DecodeJob, exc: BaseException) -> str:
    from pipeline.io.header import _sop_name

    return (
        f"cannot decode pixel data ({_sop_name(job.transfer_syntax)}): {type(exc).__name__}: {exc}"
    )


def _decode_native(job: DecodeJob) -> np.ndarray:
    count = job.rows * job.columns * job.n_frames
    dtype = np.dtype(f"{job.byte_order}u{job.bits_allocated // 8}")
    raw = np.fromfile(job.path, dtype=dtype, count=count, offset=int(job.offset or 0))
    if raw.size != count:
        raise ValueError(f"pixel data ended after {raw.size} of {count} values")
    stored = unpack_native(raw, job.bits_stored, job.pixel_representation)
    return stored.reshape(job.n_frames, job.rows, job.columns)


def _decode_pydicom(job: DecodeJob) -> np.ndarray:
    import pydicom

    ds = pydicom.dcmread(job.path)
    # pydicom >= 3 masks to BitsStored and sign-extends; J2K sign mismatches are corrected
    arr = np.asarray(ds.pixel_array)
    expected = job.n_frames * job.rows * job.columns
    if arr.size != expected:
        raise ValueError(f"decoded {arr.shape}, expected {job.n_frames}x{job.rows}x{job.columns}")
    if arr.dtype.kind == "f":
        raise ValueError(f"decoder returned floating-point pixels ({arr.dtype})")
    return arr.reshape(job.n_frames, job.rows, job.columns)


# ---------------------------------------------------------------- isolated (process) decoding

_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0


def _context() -> mp.context.BaseContext:
    # fork: starts in milliseconds and never re-imports the caller's __main__ (scripts without a
    # main guard, notebooks); workers only run pydicom/numpy decoding, not torch
    if "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return mp.get_context("spawn")  # pragma: no cover - non-POSIX


def _get_pool(workers: int) -> ProcessPoolExecutor | None:
    global _POOL, _POOL_SIZE
    if _POOL is not None and workers == _POOL_SIZE:
        return _POOL
    _shutdown_pool(kill=False)
    if mp.current_process().daemon:  # e.g. inside a DataLoader worker: no children allowed
        return None
    try:
        _POOL = ProcessPoolExecutor(
            max_workers=workers, mp_context=_context(), initializer=_init_worker
        )
    except (OSError, ValueError, AssertionError) as exc:
        log.warning("cannot start decoder processes (%s); decoding in-process", exc)
        return None
    _POOL_SIZE = workers
    return _POOL


def _shutdown_pool(*, kill: bool) -> None:
    global _POOL, _POOL_SIZE
    pool, _POOL, _POOL_SIZE = _POOL, None, 0
    if pool is None:
        return
    if kill:
        _kill_workers(pool)
    pool.shutdown(wait=not kill, cancel_futures=True)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):  # already gone
            proc.kill()


def _decode_isolated(jobs: list[DecodeJob], workers: int) -> list[DecodeResult]:
    pool = _get_pool(workers)
    if pool is None:
        return [_safe_decode(j) for j in jobs]
    results: list[DecodeResult | None] = [None] * len(jobs)
    # a few files per task: fewer round trips to the workers, still balanced across them
    size = max(1, min(FILES_PER_TASK, -(-len(jobs) // (2 * workers))))
    chunks = [list(range(i, min(i + size, len(jobs)))) for i in range(0, len(jobs), size)]
    futures: dict[Future[list[DecodeResult]], list[int]] = {
        pool.submit(_worker_many, [jobs[i] for i in idx]): idx for idx in chunks
    }
    budgets = {f: sum(time_budget_s(jobs[i]) for i in idx) for f, idx in futures.items()}
    pending = set(futures)
    trouble = False
    while pending and not trouble:
        # a running task finishes within its files' budgets; if none finished within the
        # largest pending budget, a decoder hangs
        limit = max(budgets[f] for f in pending)
        done, pending = wait(pending, timeout=limit, return_when=FIRST_COMPLETED)
        if not done:
            trouble = True  # nothing finished within the budget: something hangs
        for fut in done:
            try:
                for i, decoded in zip(futures[fut], fut.result(), strict=True):
                    results[i] = decoded
            except BrokenProcessPool:
                trouble = True
            except Exception as exc:  # e.g. a result that cannot travel back (pickling)
                log.debug("decoder task failed: %s", exc)
                for i in futures[fut]:
                    results[i] = _decode_alone(jobs[i])
    if trouble:
        log.warning("a decoder crashed or hung; retrying the remaining files one by one")
        _shutdown_pool(kill=True)
        for i in range(len(jobs)):
            if results[i] is None:
                results[i] = _decode_alone(jobs[i])
    return [r if r is not None else "not decoded" for r in results]


def _decode_alone(job: DecodeJob) -> DecodeResult:
    """Decode in a fresh single process, so a crash or hang is pinned on this file."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=_context(), initializer=_init_worker)
    budget = time_budget_s(job)
    try:
        return pool.submit(_captured, job).result(timeout=budget)
    except FutureTimeout:
        _kill_workers(pool)
        return (
            f"decoder hung (no result within the decode time budget of {budget:.0f} s for "
            f"this file; LDCT_DECODE_TIMEOUT_S); file skipped"
        )
    except BrokenProcessPool:
        return "decoder crashed (worker process died) on this file; file skipped"
    except Exception as exc:
        return _reason(job, exc)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
