"""Candidate denoisers compared: validation quality after equal short training, speed, size.

Quality comes from training runs made beforehand on the generated training set with the same
config except the model (``ldct train --config configs/train_candidate_unet.yaml
--set model.name=...``);
their last validation row (``metrics.csv``: PSNR/SSIM of input and output on the generator's own
validation entries, never held-out data) is read. Speed: best-of-``reps`` wall time of one
512x512 fp32 slice (eager NCHW, and the inference path of ``prepare_for_inference``), on
this CPU with ``--threads`` threads.

Usage: ``python benchmarks/bench_candidates.py RUN_DIR [RUN_DIR ...] [--threads 2] [--reps 3]``
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from pipeline.models.flops import count_parameters, gflops_per_slice
from pipeline.models.precision import prepare_for_inference
from pipeline.models.registry import build_model
from pipeline.train.config import load_train_config


def last_val(run: Path) -> dict[str, float]:
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r["kind"] == "val"]
    if not rows:
        raise SystemExit(f"{run}: no validation row in metrics.csv")
    r = rows[-1]
    return {k: float(r[k]) for k in ("step", "psnr", "input_psnr", "ssim", "input_ssim")}


def best_time(model: torch.nn.Module, x: torch.Tensor, reps: int) -> float:
    """Best-of-``reps`` seconds of ``model(x)`` after one warm-up (the machine is shared)."""
    with torch.inference_mode():
        model(x)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        "| model | params | GFLOPs/512^2 | val steps | val PSNR gain dB | val SSIM gain | "
        "fp32 slices/s (eager NCHW) | fp32 slices/s (inference path) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        cfg = load_train_config(run / "config.yaml")
        model = build_model(cfg.model.name, **cfg.model.params).eval()
        v = last_val(run)
        x = torch.rand(1, 1, 512, 512)
        t = best_time(model, x, args.reps)
        fast = prepare_for_inference(model, torch.float32)  # what ldct denoise runs
        tc = best_time(fast, x.contiguous(memory_format=torch.channels_last), args.reps)
        label = cfg.model.name + (f" {cfg.model.params}" if cfg.model.params else "")
        print(
            f"| {label} | {count_parameters(model):,} | {gflops_per_slice(model, 512):.1f} | "
            f"{int(v['step'])} | {v['psnr'] - v['input_psnr']:+.2f} | "
            f"{v['ssim'] - v['input_ssim']:+.3f} | {1 / t:.2f} | {1 / tc:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
