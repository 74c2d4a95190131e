"""End-to-end ``ldct denoise`` throughput vs model-only throughput, and peak RSS vs study count.

Run: ``.venv/bin/python benchmarks/bench_denoise.py [--quick] [--z N] [--model CKPT] [--rounds R]
[--no-rss]``.

* Throughput: the same 512x512 series (a) through ``ldct denoise`` (scan, read, infer, write,
  verify, publish, manifest; slices written while the next batch is inferred), (b) the same with
  the whole-series write after inference (the earlier runner, for a before/after in one run) and
  (c) through the model alone (``Denoiser.denoise_slices`` on the HU array already in memory, same
  batch size and precision), alternated for ``--rounds``. Goal: e2e >= 0.8 x model-only.
* Memory: peak RSS of a fresh ``ldct denoise`` process on 1 study vs 5 studies of 512x512xZ
  (goal: flat, and < 2 GiB for Z = 500). ``--quick`` uses a small Z and says so.

The model is the bundled demo model when it exists, else a freshly built default DRL-E
(untrained weights: the speed is what matters here).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
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

from pipeline.io.write import write_new_series  # noqa: E402

# Peak RSS from VmHWM: ru_maxrss of an exec'ed child still carries the forked parent's peak.
_RSS_CHILD = (
    "import sys\n"
    "from pipeline.cli.main import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
    "print('MAXRSS_KB', hwm.split()[1])\n"
    "sys.exit(rc)\n"
)


def make_study(folder: Path, z: int, seed: int) -> None:
    """A 512x512xZ CT series (ellipse body, noise, padding outside the FOV circle)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:512, :512]
    r = np.hypot(yy - 255.5, xx - 255.5)
    body = ((yy - 256) / 200.0) ** 2 + ((xx - 256) / 170.0) ** 2 <= 1
    sl = np.where(body, 40.0, -1000.0).astype(np.float32)
    hu = np.repeat(sl[None], z, axis=0) + rng.normal(0, 30, (z, 512, 512)).astype(np.float32) * body
    write_new_series(
        np.round(hu),
        (1.0, 0.7, 0.7),
        (-180.0, -180.0, 10.0 * seed),
        np.eye(3),
        folder,
        patient_id=f"BENCH{seed}",
        patient_name="Bench^Mark",
        series_description="BENCH 1mm",
        uid_key=f"bench{seed}",
        padding_mask=np.repeat((r > 255.5)[None], z, axis=0),
    )


def model_checkpoint(tmp: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    try:
        from pipeline.models.bundled import bundled_model_path

        return bundled_model_path()
    except Exception:  # no bundled model in this checkout: default DRL-E, fresh weights
        from pipeline.models.checkpoint import save_checkpoint
        from pipeline.models.registry import build_model

        return save_checkpoint(tmp / "drle.pt", build_model("drle"), {"name": "drle"})


def cli(args: list[str]) -> tuple[float, int]:
    """Run ``ldct ARGS`` in a fresh process; returns (wall seconds, peak RSS in KiB)."""
    env = {**os.environ, "LDCT_NO_PROGRESS": "1"}
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, *args], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"ldct {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    kb = int(next(ln.split()[1] for ln in res.stdout.splitlines() if ln.startswith("MAXRSS_KB")))
    return wall, kb


@contextmanager
def whole_series_writes() -> Iterator[None]:
    """The order before streaming: infer every slice of a series, then write them all.

    ``ldct denoise`` hands each finished batch to its writer thread; holding the batches back
    until the last one is done reproduces the earlier runner (same encode/verify/publish work).
    """
    from pipeline.infer.engine import Denoiser

    original = Denoiser.denoise_slices

    def infer_then_write(
        self: Denoiser,
        hu: np.ndarray,
        out: np.ndarray | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        result = original(self, hu, out=out)
        if on_batch is not None:
            on_batch(0, hu.shape[0])
        return result

    Denoiser.denoise_slices = infer_then_write  # type: ignore[method-assign]
    try:
        yield
    finally:
        Denoiser.denoise_slices = original  # type: ignore[method-assign]


def throughput(tmp: Path, ckpt: Path, z: int, rounds: int = 1) -> dict[str, list[float]]:
    """Slices/s on one 512x512xZ series, in-process, per round, for three runs:

    ``model``: the model alone on the HU array in memory (same batch size and precision);
    ``stream``: ``ldct denoise`` (scan, read, infer, write, verify, publish, manifest);
    ``whole``: the same with the whole-series write after inference (the earlier runner).
    The machine is shared: the three alternate, in a rotating order, ``rounds`` times.
    """
    from pipeline.cli.main import main
    from pipeline.infer.config import DenoiseConfig
    from pipeline.infer.loader import load_denoiser
    from pipeline.io.read import read_volume

    study = tmp / "tp_in" / "s0"
    make_study(study, z, seed=100)
    den = load_denoiser(DenoiseConfig(model=str(ckpt)))
    vol = read_volume(study)
    den.denoise_slices(vol.hu.copy())  # warm-up: probes, oneDNN primitives for these shapes
    print(f"precision {den.precision}")
    os.environ["LDCT_NO_PROGRESS"] = "1"
    out = tmp / "tp_out"
    argv = ["-q", "denoise", str(study.parent), "--out", str(out), "--model", str(ckpt)]

    stages: dict[str, dict[str, str]] = {}

    def e2e(mode: str = "stream") -> None:
        shutil.rmtree(out, ignore_errors=True)  # a fresh output folder (no resume)
        if main(argv) != 0:
            raise SystemExit("ldct denoise failed")
        with open(out / "manifest.csv", newline="") as f:
            stages[mode] = next(csv.DictReader(f))

    def whole() -> None:
        with whole_series_writes():
            e2e("whole")

    e2e()  # warm-up run (imports, probes)
    runs: dict[str, Callable[[], object]] = {
        "model": lambda: den.denoise_slices(vol.hu.copy()),
        "stream": e2e,
        "whole": whole,
    }
    rates: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            t0 = time.perf_counter()
            runs[name]()
            rates[name].append(z / (time.perf_counter() - t0))
        m = rates["model"][-1]
        print(
            f"round {r + 1}: model {m:.2f}, stream {rates['stream'][-1]:.2f} "
            f"({rates['stream'][-1] / m:.2f}x), whole-series write {rates['whole'][-1]:.2f} "
            f"({rates['whole'][-1] / m:.2f}x) slices/s",
            flush=True,
        )
    for mode, row in stages.items():  # the series' own stage times (last run of each mode)
        print(f"{mode}: read {row['read_s']} s, infer {row['infer_s']} s, write {row['write_s']} s")
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small Z (seconds to minutes)")
    ap.add_argument("--z", type=int, default=None, help="slices per study (default 500; quick 16)")
    ap.add_argument("--model", default=None, help="checkpoint (default: bundled or fresh DRL-E)")
    ap.add_argument("--rss-only", action="store_true", help="skip the throughput comparison")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS comparison")
    ap.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds")
    args = ap.parse_args()
    z = args.z or (16 if args.quick else 500)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, z={z} slices/study")
    if args.quick:
        print("(--quick: Z is small; the < 2 GiB goal is for Z = 500)")
    with tempfile.TemporaryDirectory(prefix="bench_denoise_") as t:
        tmp = Path(t)
        ckpt = model_checkpoint(tmp, args.model)
        print(f"model: {ckpt}")
        if not args.rss_only:
            rates = throughput(tmp, ckpt, z, args.rounds)
            med = {k: statistics.median(v) for k, v in rates.items()}
            ratio = {
                k: statistics.median(a / b for a, b in zip(v, rates["model"], strict=True))
                for k, v in rates.items()
            }
            print(f"{'median of ' + str(args.rounds) + ' rounds':34}{'slices/s':>10}{'ratio':>8}")
            print(
                f"{'ldct denoise (e2e, streamed)':34}{med['stream']:>10.2f}{ratio['stream']:>8.2f}"
            )
            print(f"{'  same, whole-series write':34}{med['whole']:>10.2f}{ratio['whole']:>8.2f}")
            print(f"{'model only (baseline)':34}{med['model']:>10.2f}{1.0:>8.2f}")
            print(
                f"e2e/model-only (median of per-round ratios): {ratio['stream']:.2f} (goal >= 0.8)"
            )
        if args.no_rss:
            return
        for i in range(5):
            make_study(tmp / "mem_in" / f"study{i}", z, seed=i)
        rss = {}
        for n in (1, 5):
            inputs = [str(tmp / "mem_in" / f"study{i}") for i in range(n)]
            out = tmp / f"mem_out{n}"
            wall, kb = cli(["-q", "denoise", *inputs, "--out", str(out), "--model", str(ckpt)])
            rss[n] = kb / 1024
            print(f"{n} stud{'y' if n == 1 else 'ies'}: peak RSS {rss[n]:.0f} MiB, {wall:.1f} s")
        print(f"peak RSS ratio 5/1 studies: {rss[5] / rss[1]:.2f} (goal: ~1, flat)")


if __name__ == "__main__":
    main()
