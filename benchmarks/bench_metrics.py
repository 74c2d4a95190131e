"""Benchmark: the full metric set (3 profiles) for N slices of 512x512, ours vs a skimage loop.

Full metric set = ``redcnn`` (PSNR + 11x11 Gaussian SSIM on HU clipped to [-160, 240], data
range 400), ``ldctbench-abdomen`` (PSNR + 7x7 uniform SSIM on the 400/50 window in [0, 1]) and
``hu`` (RMSE + MAE in the body mask). Ours: :func:`pipeline.evaluate.batched.compute_profiles`
(float32 batches of 4 slices on one worker thread per core). Baseline: a per-slice loop of
``skimage.metrics`` (float64, as skimage computes) + NumPy for RMSE/MAE. Both get the same
inputs and the same body masks (mask computation is not timed). Prints both throughputs, the
ratio and the largest value difference.

    .venv/bin/python benchmarks/bench_metrics.py [--quick] [--slices N] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pipeline.evaluate.batched import compute_profiles
from pipeline.evaluate.body_mask import body_mask
from pipeline.evaluate.profiles import PROFILES
from pipeline.intensity import apply_window

PROFILE_NAMES = ("redcnn", "ldctbench-abdomen", "hu")
BATCH = 4


def make_data(n: int, size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((yy - 0.5) / 0.42) ** 2 + ((xx - 0.5) / 0.47) ** 2 <= 1
    base = np.where(body, 40.0, -1000.0)
    base[((yy - 0.45) / 0.12) ** 2 + ((xx - 0.35) / 0.1) ** 2 <= 1] = 90.0  # "liver"
    base[((yy - 0.6) / 0.05) ** 2 + ((xx - 0.6) / 0.05) ** 2 <= 1] = 700.0  # "bone"
    full = np.empty((n, size, size), np.float32)
    low = np.empty((n, size, size), np.float32)
    for i in range(n):
        full[i] = base + 10 * rng.standard_normal((size, size))
        low[i] = full[i] + 40 * rng.standard_normal((size, size))
    return low, full


WORKERS: int | None = None


def ours(low: np.ndarray, full: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    res = compute_profiles(low, full, PROFILE_NAMES, masks, workers=WORKERS)
    return {f"{p}.{k}": v for (p, k), v in res.items()}


def skimage_loop(low: np.ndarray, full: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    w_abd = PROFILES["ldctbench-abdomen"].window
    for lo, fu, m in zip(low.astype(np.float64), full.astype(np.float64), masks, strict=True):
        lc, fc = np.clip(lo, -160, 240), np.clip(fu, -160, 240)
        out.setdefault("redcnn.psnr", []).append(peak_signal_noise_ratio(fc, lc, data_range=400))
        out.setdefault("redcnn.ssim", []).append(
            structural_similarity(
                fc, lc, data_range=400, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False,
            )
        )  # fmt: skip
        lw, fw = apply_window(lo, w_abd), apply_window(fu, w_abd)  # type: ignore[arg-type]
        out.setdefault("ldctbench-abdomen.psnr", []).append(
            peak_signal_noise_ratio(fw, lw, data_range=1.0)
        )
        out.setdefault("ldctbench-abdomen.ssim", []).append(
            structural_similarity(fw, lw, data_range=1.0)
        )
        d = (lo - fu)[m]
        out.setdefault("hu.rmse_hu", []).append(float(np.sqrt(np.mean(d * d))))
        out.setdefault("hu.mae_hu", []).append(float(np.mean(np.abs(d))))
    return {k: np.asarray(v) for k, v in out.items()}


def _interleaved(
    low: np.ndarray, full: np.ndarray, masks: np.ndarray, repeat: int
) -> tuple[float, float, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Alternate ours / skimage ``repeat`` times (load drifts hit both); best time of each."""
    t_o = t_s = float("inf")
    r_o: dict[str, np.ndarray] = {}
    r_s: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        t = time.perf_counter()
        r_o = ours(low, full, masks)
        t_o = min(t_o, time.perf_counter() - t)
        t = time.perf_counter()
        r_s = skimage_loop(low, full, masks)
        t_s = min(t_s, time.perf_counter() - t)
    return t_o, t_s, r_o, r_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="32 slices instead of 200")
    ap.add_argument("--slices", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="worker threads (default: cores)")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    n = a.slices or (32 if a.quick else 200)
    global WORKERS
    WORKERS = a.threads
    low, full = make_data(n)
    masks = body_mask(full)
    ours(low[:BATCH], full[:BATCH], masks[:BATCH])  # warm-up
    t_ours, t_sk, r_ours, r_sk = _interleaved(low, full, masks, a.repeat)
    diff = {k: float(np.max(np.abs(r_ours[k] - r_sk[k]))) for k in r_sk}
    print(f"full metric set ({', '.join(PROFILE_NAMES)}), {n} slices of 512x512, "
          f"worker threads={a.threads or os.cpu_count()}")  # fmt: skip
    print(f"  ours (torch, float32, batched): {t_ours:7.2f} s  {1000 * t_ours / n:6.1f} ms/slice")
    print(f"  skimage loop (float64):         {t_sk:7.2f} s  {1000 * t_sk / n:6.1f} ms/slice")
    print(f"  speed-up ours/skimage: {t_sk / t_ours:.2f}x")
    print(
        "  max |ours - skimage| per metric: " + ", ".join(f"{k} {v:.2e}" for k, v in diff.items())
    )


if __name__ == "__main__":
    main()
