"""Benchmark: a folder of many small one-slice DICOM files -> ``scan`` and ``ldct inspect``.

Writes N files of 64x64 CT (signed 16-bit, intercept -1024) into one folder, either each file
its own series (``--layout each``: an export of single images) or all one series
(``--layout one``), then times, in this process:

* ``scan`` (header walk, validation, grouping, accounting);
* ``ldct inspect --headers-only`` (scan + geometry per series + the text table);
* ``ldct inspect`` (also decodes every series for its HU range).

Prints seconds and files/s per round and the median. The text output goes to /dev/null.

    .venv/bin/python benchmarks/bench_scan_many.py [--files 12000] [--layout each|one]
        [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_files(out: Path, n: int, layout: str, size: int = 64) -> None:
    """N one-slice files; each its own series (``each``) or one series (``one``)."""
    out.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    body = np.hypot(yy - size / 2, xx - size / 2) < size * 0.38
    pixels = np.round(np.where(body, 40.0, -1000.0) + 1024).astype("<i2").tobytes()
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(n):
        if layout == "each":
            series = generate_uid()
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "CT", f"P{k % 50}", "Bench^Patient"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(k)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = pixels
        ds.save_as(out / f"f{k:05d}", enforce_file_format=True)


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=12000)
    ap.add_argument("--layout", choices=["each", "one"], default="each")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write/reuse the files in this folder")
    args = ap.parse_args(argv)
    os.environ.setdefault("LDCT_NO_PROGRESS", "1")

    from pipeline.cli.main import main as ldct
    from pipeline.io.discover import scan

    root = args.keep or Path(tempfile.mkdtemp(prefix="ldct-bench-scan-"))
    if not any(root.glob("f*")):
        t = _timed(lambda: write_files(root, args.files, args.layout))
        print(f"wrote {args.files} files ({args.layout}) in {t:.1f} s into {root}")
    n = sum(1 for _ in root.glob("f*"))
    print(f"load average at start: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")

    def inspect(*flags: str) -> None:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            rc = ldct(["inspect", str(root), *flags])
        if rc != 0:
            raise SystemExit(f"ldct inspect failed with exit code {rc}")

    cases: dict[str, Callable[[], object]] = {
        "scan": lambda: scan([root]),
        "inspect --headers-only": lambda: inspect("--headers-only"),
        "inspect": lambda: inspect(),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(args.repeats):
        for name, fn in cases.items():
            t = _timed(fn)
            times[name].append(t)
            print(f"round {r + 1}: {name:<24} {t:7.2f} s  {n / t:8.0f} files/s", flush=True)
    print(f"median of {args.repeats} rounds, {n} files ({args.layout}):")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<24} {med:7.2f} s  {n / med:8.0f} files/s")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
