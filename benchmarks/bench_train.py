"""Training throughput: MSE-only vs MSE + perceptual, fp32 vs bf16 denoiser, in one run.

Times the project's real training step (:meth:`pipeline.train.loop.Trainer.train_step`: forward
under autocast, fp32 objective, NaN/inf guards, backward, clipping, Adam) for the default DRL-E
model on batches of 16 patches of 64x64 (the issue's reference setting). The perceptual term uses
*seeded random* VGG16 weights (no ImageNet weights exist on this machine; the cost is the same),
the project's default layer set (relu1_2, relu2_2, relu3_3) in fp32. Prints samples/s and the
ratios; goal: the perceptual step <= 2.5x the MSE-only step in the same precision.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import torch
from torch.utils.data import Dataset

from pipeline.losses.objective import LossConfig, build_objective
from pipeline.models.capability import capability
from pipeline.models.registry import build_model
from pipeline.train.distributed import DistEnv
from pipeline.train.loop import Trainer
from pipeline.train.settings import LoopConfig
from pipeline.train.sources import EpochBatches


class _Noise(Dataset[dict[str, Any]]):
    def __init__(self, n: int, patch: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.full = 0.25 + 0.05 * torch.rand(n, 1, patch, patch, generator=g)
        self.low = self.full + 0.01 * torch.randn(n, 1, patch, patch, generator=g)

    def __len__(self) -> int:
        return len(self.full)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"low": self.low[i], "full": self.full[i]}


def time_steps(
    precision: str, perceptual: bool, steps: int, batch: int, patch: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU (process) seconds per training step, after one warm-up step."""
    torch.manual_seed(0)
    loss = LossConfig.model_validate(
        {"perceptual": {"weight": 0.02 if perceptual else 0.0, "vgg_weights": "random"}}
    )
    with TemporaryDirectory() as tmp:
        cfg = LoopConfig.model_validate(
            {
                "output_dir": Path(tmp),
                "steps": steps + 1,
                "precision": precision,
                "log": {"tensorboard": False},
            }
        )
        batches = EpochBatches(_Noise(batch * 2, patch), batch_size=batch, env=DistEnv(), seed=0)
        amp = torch.bfloat16 if precision == "bf16" else None
        tr = Trainer(cfg, build_model("drle"), build_objective(loss), batches, amp_dtype=amp)
        data = next(iter(batches.iterate(0)))
        wall, cpu = [], []
        for _ in range(steps + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            out = tr.train_step(data)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if out is None:
                raise RuntimeError("benchmark step was skipped (non-finite values)")
    return wall[1:], cpu[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed steps")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps = 3 if args.quick else 10
    cap = capability("cpu")
    print(
        f"threads {torch.get_num_threads()}, {cap.describe()}, "
        f"batch {args.batch}x{args.patch}x{args.patch}"
    )
    print("perceptual term: VGG16 relu1_2/relu2_2/relu3_3, SEEDED RANDOM weights, fp32")
    print("CPU s/step = process time per step (robust to other load; wall time also shown)")
    res: dict[tuple[str, bool], float] = {}
    precisions = ("fp32", "bf16") if cap.bf16.runs else ("fp32",)
    if not cap.bf16.runs:
        print(f"bf16 not measured: {cap.bf16.detail}")
    for precision in precisions:
        for perceptual in (False, True):
            wall, cpu = time_steps(precision, perceptual, steps, args.batch, args.patch)
            t, w = statistics.median(cpu), statistics.median(wall)
            res[(precision, perceptual)] = t
            name = "MSE + perceptual" if perceptual else "MSE only"
            print(
                f"{precision:5s} {name:17s} CPU {t * 1000:8.1f} ms/step "
                f"({args.batch / t:6.1f} samples per CPU-s) "
                f"wall {w * 1000:8.1f} ms/step ({args.batch / w:6.1f} samples/s)"
            )
    for precision in precisions:
        r = res[(precision, True)] / res[(precision, False)]
        verdict = "meets" if r <= 2.5 else "MISSES"
        print(f"{precision}: perceptual/MSE step time ratio {r:.2f}x ({verdict} goal <= 2.5x)")
    for perceptual in (False, True) if "bf16" in precisions else ():
        s = res[("fp32", perceptual)] / res[("bf16", perceptual)]
        name = "MSE + perceptual" if perceptual else "MSE only"
        print(f"bf16 denoiser speed-up over fp32 ({name}): {s:.2f}x")


if __name__ == "__main__":
    main()
