"""Benchmark: DICOM series -> HU volume, our reader vs SimpleITK ImageSeriesReader (GDCM).

Writes a synthetic 512x512 x N CT series (signed 16-bit, intercept -1024, padding outside the
field of view) uncompressed and RLE-compressed, then times, on the same files and in one run:

* ours: ``scan`` (header-only) + ``read_series`` (native fast path / parallel isolated decode),
  i.e. everything from a folder to HU float32 with padding mask;
* SimpleITK: ``GetGDCMSeriesFileNames`` + ``ImageSeriesReader.Execute`` + array as float32;
* plain pydicom: ``dcmread`` + ``pixel_array`` + rescale per file (single thread), for context;

and a header scan of a folder of many small files (files/s), ours vs SimpleITK's GDCM scanner
and vs bare pydicom ``dcmread(stop_before_pixels=True, specific_tags=...)`` (no validation).
Rounds are interleaved (the machine load hits every contender alike); the numbers shown are
medians, and the ratio is the median of the per-round time ratios.
The HU of both readers are compared (must agree outside padding) before any number is shown.

    .venv/bin/python benchmarks/bench_read.py [--quick] [--slices 200] [--scan-files 5000]
        [--repeats 5] [--only series|scan]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RLELossless, generate_uid

from pipeline.io.decode import default_workers
from pipeline.io.discover import scan
from pipeline.io.read import read_series


def write_series(out: Path, n: int, size: int, syntax: str, seed: int = 0) -> list[Path]:
    """A noisy body-like phantom, padded outside the FOV circle, one file per slice."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    base = np.where(r < size * 0.38, 40.0, -1000.0)
    base[r < size * 0.05] = 900.0
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(n):
        hu = base + rng.normal(0, 20, base.shape)
        stored = np.round(hu + 1024).astype(np.int16)
        stored[r > size / 2] = -2000
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.Modality = "BENCH", "Bench^Mark", "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "bench", 1, k + 1
        ds.ImagePositionPatient = [-250.0, -250.0, -100.0 + 1.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.98, 0.98], 1.0
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept, ds.PixelPaddingValue = 1, -1024, -2000
        ds.PixelData = stored.tobytes()
        if syntax != ExplicitVRLittleEndian:
            ds.compress(syntax, encoding_plugin="pylibjpeg")
        path = out / f"{int(rng.integers(1 << 48)):012x}"  # random names: order must come from IPP
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def ours(folder: Path, workers: int) -> np.ndarray:
    (record,) = scan([folder]).series
    return read_series(record, workers=workers).hu


def simpleitk(folder: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute()).astype(np.float32, copy=False)


def plain_pydicom(folder: Path) -> np.ndarray:
    slices = []
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        slices.append((float(ds.ImagePositionPatient[2]), hu))
    slices.sort(key=lambda t: t[0])
    return np.stack([s for _, s in slices])


def race(
    contenders: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[list[float], object]]:
    """Wall times of each contender over ``repeats`` interleaved rounds, and its last result.

    Rounds alternate between contenders so all see the same machine load; the first round is
    a warm-up (page cache, worker start) and is not counted.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, object] = {}
    for rnd in range(repeats + 1):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
            results[name] = out  # frees the previous round's result outside the timing
            if rnd > 0:
                times[name].append(dt)
    return {name: (times[name], results[name]) for name in contenders}


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of slow/fast measured in the same round (robust to load swings)."""
    return statistics.median(a / b for a, b in zip(slow, fast, strict=True))


def bench_series(root: Path, n: int, size: int, repeats: int, workers: int) -> None:
    print(f"\n== read {n} slices of {size}x{size} to HU (median of {repeats} interleaved "
          f"rounds, {workers} workers)")  # fmt: skip
    print(f"{'syntax':<26}{'ours sl/s':>11}{'SimpleITK sl/s':>16}{'pydicom sl/s':>14}{'ratio':>8}")
    syntaxes = (("uncompressed (Expl. LE)", ExplicitVRLittleEndian), ("RLE Lossless", RLELossless))
    for name, syntax in syntaxes:
        folder = root / name.split()[0]
        write_series(folder, n, size, syntax)
        res = race(
            {
                "ours": partial(ours, folder, workers),
                "sitk": partial(simpleitk, folder),
                "pydicom": partial(plain_pydicom, folder),
            },
            repeats,
        )
        (t_ours, hu_ours), (t_sitk, hu_sitk), (t_py, _) = res["ours"], res["sitk"], res["pydicom"]
        a, b = np.asarray(hu_ours), np.asarray(hu_sitk)
        keep = b > -2500  # SimpleITK keeps padding at -3024 HU; we map it to -1000 (masked)
        if a.shape != b.shape or not np.array_equal(a[keep], b[keep]):
            sys.exit(f"{name}: HU differ between readers -- benchmark aborted")
        med = statistics.median
        print(
            f"{name:<26}{n / med(t_ours):>11.0f}{n / med(t_sitk):>16.0f}{n / med(t_py):>14.0f}"
            f"{paired_ratio(t_sitk, t_ours):>7.2f}x"
        )


def pydicom_headers(folder: Path) -> int:
    """Baseline: walk + ``dcmread(stop_before_pixels, specific_tags)`` per file, no checks."""
    tags = ["SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient", "Rows"]
    n = 0
    for root, _, files in os.walk(folder):
        for name in files:
            pydicom.dcmread(os.path.join(root, name), stop_before_pixels=True, specific_tags=tags)
            n += 1
    return n


def bench_scan(root: Path, n_files: int, repeats: int) -> None:
    folder = root / "scan"
    per_series = 100
    t0 = time.perf_counter()
    for i in range(0, n_files, per_series):
        write_series(folder / f"s{i // per_series:03d}", min(per_series, n_files - i), 64,
                     ExplicitVRLittleEndian, seed=i)  # fmt: skip
    took = time.perf_counter() - t0
    print(f"\n== header scan of {n_files} files in {n_files // per_series} series "
          f"(64x64 images; written in {took:.0f} s; median of {repeats})")  # fmt: skip
    expected_series = -(-n_files // per_series)

    def gdcm_scan() -> int:
        reader = sitk.ImageSeriesReader()
        total = 0
        for sub in sorted(folder.iterdir()):  # GDCM scans one folder per call
            for uid in reader.GetGDCMSeriesIDs(str(sub)):
                total += len(reader.GetGDCMSeriesFileNames(str(sub), uid))
        return total

    res = race(
        {
            "ours": lambda: scan([folder]),
            "sitk": gdcm_scan,
            "pydicom": lambda: pydicom_headers(folder),
        },
        repeats,
    )
    (t_ours, found), (t_sitk, count), (t_py, n_py) = res["ours"], res["sitk"], res["pydicom"]
    assert len(found.series) == expected_series and count == n_files == n_py  # type: ignore[attr-defined]
    med = statistics.median
    print(f"{'ours scan()':<30}{n_files / med(t_ours):>9.0f} files/s")
    print(f"{'SimpleITK GDCM scan':<30}{n_files / med(t_sitk):>9.0f} files/s   "
          f"ours/SimpleITK {paired_ratio(t_sitk, t_ours):.2f}x")  # fmt: skip
    print(f"{'pydicom dcmread headers only':<30}{n_files / med(t_py):>9.0f} files/s   "
          f"ours/pydicom {paired_ratio(t_py, t_ours):.2f}x")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 slices, 1000 scan files, 3 repeats")
    ap.add_argument("--only", choices=("series", "scan"), default=None, help="run one part")
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--scan-files", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: system tmp)")
    args = ap.parse_args(argv)
    if args.quick:
        args.slices, args.scan_files, args.repeats = 50, 1000, 3
    root = Path(tempfile.mkdtemp(prefix="bench_read_", dir=args.tmp))
    try:
        print(f"cores available: {default_workers()}; pydicom {pydicom.__version__}, "
              f"SimpleITK {sitk.Version_VersionString()}")  # fmt: skip
        print(f"load average at start: {' / '.join(f'{v:.1f}' for v in os.getloadavg())}")
        if args.only != "scan":
            bench_series(root, args.slices, args.size, args.repeats, args.workers)
        if args.only != "series":
            bench_scan(root, args.scan_files, args.repeats)
        print(f"load average at end: {' / '.join(f'{v:.1f}' for v in os.getloadavg())}")
        print("\nratio = median over rounds of (SimpleITK time / our time) measured in the same "
              "round (> 1: we are faster); HU checked equal.")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
