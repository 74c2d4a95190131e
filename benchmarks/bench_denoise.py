"""End-to-end ``ldct denoise`` throughput vs model-only throughput, and peak RSS vs study count.

Run: ``.venv/bin/python benchmarks/bench_denoise.py [--quick] [--z N] [--model CKPT]``.

* Throughput: the same 512x512 series (a) through ``ldct denoise`` (scan, read, infer, write,
  verify, publish, manifest) and (b) through the model alone (``Denoiser.denoise_slices`` on the
  HU array already in memory, same batch size and precision). Goal: e2e >= 0.8 x model-only.
* Memory: peak RSS of a fresh ``ldct denoise`` process on 1 study vs 5 studies of 512x512xZ
  (goal: flat, and < 2 GiB for Z = 500). ``--quick`` uses a small Z and says so.

The model is the bundled demo model when it exists, else a freshly built default DRL-E
(untrained weights: the speed is what matters here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
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
        from pipeline.train.bundled import bundled_model_path

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


def throughput(tmp: Path, ckpt: Path, z: int) -> tuple[float, float, str]:
    """(e2e slices/s, model-only slices/s, precision) on one 512x512xZ series, in-process."""
    from pipeline.cli.main import main
    from pipeline.infer.config import DenoiseConfig
    from pipeline.infer.loader import load_denoiser
    from pipeline.io.read import read_volume

    study = tmp / "tp_in" / "s0"
    make_study(study, z, seed=100)
    cfg = DenoiseConfig(model=str(ckpt))
    den = load_denoiser(cfg)
    vol = read_volume(study)
    den.denoise_slices(vol.hu.copy())  # warm-up: probes, oneDNN primitives for these shapes
    t0 = time.perf_counter()
    den.denoise_slices(vol.hu.copy())
    model_sps = z / (time.perf_counter() - t0)
    os.environ["LDCT_NO_PROGRESS"] = "1"
    out = tmp / "tp_out"
    argv = ["-q", "denoise", str(study.parent), "--out", str(out), "--model", str(ckpt)]
    if main(argv) != 0:  # warm-up run (imports, probes), then a fresh output folder
        raise SystemExit("ldct denoise failed")
    shutil.rmtree(out)
    t0 = time.perf_counter()
    rc = main(argv)
    e2e_sps = z / (time.perf_counter() - t0)
    if rc != 0:
        raise SystemExit(f"ldct denoise exited {rc}")
    return e2e_sps, model_sps, den.precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small Z (seconds to minutes)")
    ap.add_argument("--z", type=int, default=None, help="slices per study (default 500; quick 16)")
    ap.add_argument("--model", default=None, help="checkpoint (default: bundled or fresh DRL-E)")
    ap.add_argument("--rss-only", action="store_true", help="skip the throughput comparison")
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
            e2e, model_only, prec = throughput(tmp, ckpt, z)
            print(f"precision {prec}")
            print(f"{'':24}{'slices/s':>10}")
            print(f"{'ldct denoise (e2e)':24}{e2e:>10.2f}")
            print(f"{'model only (baseline)':24}{model_only:>10.2f}")
            print(f"ratio e2e/model-only: {e2e / model_only:.2f} (goal >= 0.8)")
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
