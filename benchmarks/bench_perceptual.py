"""Perceptual loss speed: ours vs the source article's class, fwd+bwd, 16 patches of 64x64, fp32.

Side by side in one run, at equal values (each pair is checked to agree within 1e-5):

* article default: its 224x224 resize, all four blocks (relu1_2 .. relu4_3), L1;
* article without resize, four blocks   == ours with the same four layers, L1;
* article without resize, blocks 0-2    == ours with the project default layers (relu1_2,
  relu2_2, relu3_3), L1. (The article's class always runs all four blocks.)

plus ours in the opt-in bf16 "delta" variant (convolutions on the feature difference in bf16;
values within ~1e-3 relative of fp32, see bench_perceptual_precision.py).

Variants are run round-robin (one step of each per round) and the median per variant is used,
so that a load spike on a shared machine hits all of them alike. Both wall time and process CPU
time are recorded; CPU time is far less sensitive to other jobs on a shared machine (use
``--threads 1`` for the cleanest ratios: with more threads, OpenMP spin-waits count as CPU).
Weights are random (seeded): the arithmetic, hence the time, does not depend on their values.

    .venv/bin/python benchmarks/bench_perceptual.py [--quick] [--threads N] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from article_baseline import ArticleVGGPerceptualLoss

from pipeline.losses.perceptual import PerceptualLoss
from pipeline.losses.weights import random_features_state

FOUR = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
THREE = FOUR[:3]


def make_batch(n: int = 16, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(n, 1, size, size, generator=g)
    pred = (target + 0.02 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return pred, target


def step(
    fn: Callable[[torch.Tensor], torch.Tensor], pred: torch.Tensor
) -> tuple[float, float, float]:
    """One fwd+bwd; returns (wall seconds, CPU seconds, loss value)."""
    x = pred.clone().requires_grad_(True)
    t0, c0 = time.perf_counter(), time.process_time()
    loss = fn(x)
    loss.backward()
    return time.perf_counter() - t0, time.process_time() - c0, float(loss.detach())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (article default: 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(ours)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    state = random_features_state(seed=0)
    pred, target = make_batch()

    art_resize = ArticleVGGPerceptualLoss(features_state=state, resize=True)
    art = ArticleVGGPerceptualLoss(features_state=state, resize=False)
    kw = {"distance": "l1", "windows": ["model"]}
    ours4 = PerceptualLoss(state, layers=FOUR, **kw)  # type: ignore[arg-type]
    ours3 = PerceptualLoss(state, layers=THREE, **kw)  # type: ignore[arg-type]
    ours3_bf16 = PerceptualLoss(
        state,
        layers=THREE,
        precision="bf16",
        formulation="delta",
        **kw,  # type: ignore[arg-type]
    )
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "article, 224 resize, 4 blocks (its default)": lambda x: art_resize(x, target),
        "article, no resize, 4 blocks": lambda x: art(x, target),
        "ours, 4 layers": lambda x: ours4(x, target)[0],
        "article, no resize, blocks 0-2": lambda x: art(x, target, feature_layers=(0, 1, 2)),
        "ours, 3 layers (default set)": lambda x: ours3(x, target)[0],
        "ours, 3 layers, bf16 delta (opt-in)": lambda x: ours3_bf16(x, target)[0],
    }
    if args.compile:
        compiled = torch.compile(ours3)
        t0 = time.perf_counter()
        step(lambda x: compiled(x, target)[0], pred)  # compiles
        print(
            f"torch.compile(ours, 3 layers): first call (compile) {time.perf_counter() - t0:.1f} s"
        )
        variants["ours, 3 layers, torch.compile"] = lambda x: compiled(x, target)[0]

    rounds = 3 if args.quick else 7
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    values: dict[str, float] = {}
    for name, fn in variants.items():  # warm-up (not for the 10 s article default)
        if "224" not in name:
            step(fn, pred)
    for r in range(rounds):
        for name, fn in variants.items():
            if "224" in name and r >= (1 if args.quick else 3):
                continue
            dt, dc, values[name] = step(fn, pred)
            times[name].append(dt)
            cpu[name].append(dc)
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}

    print(f"fwd+bwd per batch of 16x1x64x64, {args.threads} thread(s), medians of rounds")
    print(f"{'variant':44s} {'wall s':>8s} {'cpu s':>8s} {'n':>3s} {'loss':>12s}")
    for name in variants:
        print(
            f"{name:44s} {med[name]:8.3f} {mcpu[name]:8.3f} {len(times[name]):3d} "
            f"{values[name]:12.6g}"
        )

    def check(a: str, b: str, tol: float = 1e-5) -> None:
        rel = abs(values[a] - values[b]) / max(1e-12, abs(values[a]))
        verdict = "ok" if rel <= tol else "MISMATCH"
        print(f"values: {b!r} vs {a!r}: rel. diff {rel:.1e} ({verdict} at {tol:g})")

    check("article, no resize, 4 blocks", "ours, 4 layers")
    check("article, no resize, blocks 0-2", "ours, 3 layers (default set)")
    check("article, no resize, blocks 0-2", "ours, 3 layers, bf16 delta (opt-in)", 1e-2)
    default = "article, 224 resize, 4 blocks (its default)"
    print("speed-ups, article time / ours time (wall | cpu):")
    for ours, ref in [
        ("ours, 4 layers", "article, no resize, 4 blocks"),
        ("ours, 3 layers (default set)", "article, no resize, blocks 0-2"),
        ("ours, 3 layers, bf16 delta (opt-in)", "article, no resize, blocks 0-2"),
    ]:
        print(
            f"  {ours:36s} vs article default {med[default] / med[ours]:6.1f}x | "
            f"{mcpu[default] / mcpu[ours]:6.1f}x (goal >= 50x); vs {ref!r} "
            f"{med[ref] / med[ours]:5.2f}x | {mcpu[ref] / mcpu[ours]:5.2f}x (goal >= 1.5x)"
        )
    if args.compile:
        eager, c = "ours, 3 layers (default set)", "ours, 3 layers, torch.compile"
        print(
            f"  torch.compile vs eager (3 layers): {med[eager] / med[c]:.2f}x | "
            f"{mcpu[eager] / mcpu[c]:.2f}x"
        )


if __name__ == "__main__":
    main()
