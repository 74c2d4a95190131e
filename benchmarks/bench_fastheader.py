"""Does the hand-written DICOM header walk (``pipeline.io.fastheader``) pay end to end?

Run: ``.venv/bin/python benchmarks/bench_fastheader.py [--quick] [--z N] [--size N] [--rounds R]
[--model CKPT]``.

The same generated study (``--z`` slices of ``--size``^2, default 200 x 512^2) goes through
``ldct denoise`` (scan, read, infer, write, verify, publish, manifest) with the fast header walk
and without it (``pipeline.io.header.read_fast`` made to refuse every file, so each header is
parsed by ``pydicom.dcmread`` as it would be if the walk were deleted), alternating, ``--rounds``
times, in one process, into a fresh output folder each run. The header scan alone
(``pipeline.io.discover.scan``) is timed the same way. Printed: each run's wall time, the
medians side by side, and the fraction of the run the fast walk saves.

The model is a small DRL-E (4 channels, untrained, non-identity last conv) so that inference
takes as little of the run as a real network can: the header scan's share is as large as it
gets, which favours the fast walk. ``--model`` runs another checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.io.write_new import write_new_series  # noqa: E402


def make_study(folder: Path, z: int, size: int, seed: int = 7) -> None:
    """A CT series: ellipse body with noise, padding outside the reconstruction circle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    body = ((yy - c) / (0.39 * size)) ** 2 + ((xx - c) / (0.33 * size)) ** 2 <= 1
    sl = np.where(body, 40.0, -1000.0).astype(np.float32)
    hu = (
        np.repeat(sl[None], z, axis=0)
        + rng.normal(0, 30, (z, size, size)).astype(np.float32) * body
    )
    write_new_series(
        np.round(hu), (1.0, 0.7, 0.7), (-180.0, -180.0, 0.0), np.eye(3), folder,
        patient_id="BENCHFH", patient_name="Bench^Header", series_description="BENCH 1mm",
        uid_key="bench-fastheader",
        padding_mask=np.repeat((np.hypot(yy - c, xx - c) > size / 2)[None], z, axis=0),
    )  # fmt: skip


def small_model(tmp: Path) -> Path:
    from pipeline.models.checkpoint import save_checkpoint
    from pipeline.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("drle", channels=4)
    torch.nn.init.normal_(model.out.weight, std=0.01)
    return save_checkpoint(tmp / "drle4.pt", model, {"name": "drle", "params": {"channels": 4}})


@contextmanager
def without_fastheader() -> Iterator[None]:
    """Every file refused by the fast walk: headers come from ``pydicom.dcmread`` alone."""
    from pipeline.io import header
    from pipeline.io.fastheader import Unusual

    original = header.read_fast

    def refuse(*_a: object, **_k: object) -> object:
        raise Unusual("benchmark: fast header walk disabled")

    header.read_fast = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        header.read_fast = original


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_line() -> str:
    from pipeline.models.capability import capability

    return str(capability("cpu").describe())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 slices of 256^2, 2 rounds")
    ap.add_argument("--z", type=int, default=None, help="slices (default 200)")
    ap.add_argument("--size", type=int, default=None, help="rows = columns (default 512)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3)")
    ap.add_argument("--model", default=None, help="checkpoint (default: small DRL-E, 4 channels)")
    args = ap.parse_args()
    z = args.z or (20 if args.quick else 200)
    size = args.size or (256 if args.quick else 512)
    rounds = args.rounds or (2 if args.quick else 3)
    os.environ["LDCT_NO_PROGRESS"] = "1"
    from pipeline.cli.main import main as ldct
    from pipeline.io.discover import scan

    print(cpu_line())
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-fastheader-") as tmp_s:
        tmp = Path(tmp_s)
        study = tmp / "in" / "s0"
        make_study(study, z, size)
        ckpt = Path(args.model) if args.model else small_model(tmp)
        out = tmp / "out"
        argv = ["-q", "denoise", str(study.parent), "--out", str(out), "--model", str(ckpt)]
        print(f"study: {z} slices of {size}x{size}; model {ckpt.name}; {rounds} rounds")

        stages: list[dict[str, float]] = []

        def denoise() -> None:
            shutil.rmtree(out, ignore_errors=True)  # a fresh output folder: no resume
            with contextlib.redirect_stdout(io.StringIO()):  # its summary lines
                rc = ldct(argv)
            if rc != 0:
                raise SystemExit("ldct denoise failed")
            with open(out / "manifest.csv", newline="") as f:
                row = next(csv.DictReader(f))
            stages.append({k: float(row[k]) for k in ("read_s", "infer_s", "write_s")})

        def scan_only() -> None:
            (series,) = scan([study]).series
            assert series.n_slices == z

        def slow(fn: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                with without_fastheader():
                    fn()

            return run

        denoise()  # warm-up: imports, model probes, page cache
        runs = {
            "scan fast": scan_only, "scan pydicom": slow(scan_only),
            "denoise fast": denoise, "denoise pydicom": slow(denoise),
        }  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in runs}
        stage_of: dict[str, list[dict[str, float]]] = {"denoise fast": [], "denoise pydicom": []}
        for r in range(rounds):
            order = list(runs) if r % 2 == 0 else [*list(runs)[2:], *list(runs)[:2]]
            for pair in (order[:2], order[2:]):
                for name in pair if r % 2 == 0 else pair[::-1]:
                    times[name].append(timed(runs[name]))
                    if name in stage_of:
                        stage_of[name].append(stages[-1])
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                flush=True,
            )
        med = {k: statistics.median(v) for k, v in times.items()}
        print()
        print(f"{'what':<10}{'fast walk':>12}{'pydicom':>12}{'ratio':>9}{'saved':>12}")
        for what in ("scan", "denoise"):
            f, p = med[f"{what} fast"], med[f"{what} pydicom"]
            print(f"{what:<10}{f:>11.2f}s{p:>11.2f}s{p / f:>8.2f}x{p - f:>11.2f}s")
        for name, rows in stage_of.items():
            print(
                f"{name}: median stage times (manifest) "
                + ", ".join(f"{k} {statistics.median(r[k] for r in rows):.2f} s" for k in rows[0])
            )
        diffs = [
            p - f for f, p in zip(times["denoise fast"], times["denoise pydicom"], strict=True)
        ]
        print(
            "paired per-round differences (pydicom - fast): "
            + ", ".join(f"{d:+.2f} s" for d in diffs)
            + f"; median {statistics.median(diffs):+.2f} s"
        )
        saved = med["denoise pydicom"] - med["denoise fast"]
        share = saved / med["denoise pydicom"]
        print(
            f"\nthe fast walk saves {saved:.2f} s of a {med['denoise pydicom']:.2f} s run "
            f"({100 * share:.1f} %; the scan alone: {med['scan pydicom']:.2f} s with pydicom, "
            f"{100 * med['scan pydicom'] / med['denoise pydicom']:.1f} % of the run); "
            f"decision threshold 5 %: {'keep' if share >= 0.05 else 'delete'}"
        )


if __name__ == "__main__":
    main()
