"""Small throwaway pieces for the training-loop tests (not the project's models or losses)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from pipeline.train.distributed import DistEnv
from pipeline.train.loop import Trainer
from pipeline.train.settings import LoopConfig
from pipeline.train.sources import EpochBatches


class ToyPairs(Dataset[dict[str, Any]]):
    """Deterministic pairs: smooth image + per-(epoch, index) noise, random 8x8 crop."""

    def __init__(self, n: int = 32, size: int = 12, patch: int = 8, seed: int = 0) -> None:
        self.n, self.size, self.patch, self.seed, self.epoch = n, size, patch, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 1009 + i)
        yy, xx = torch.meshgrid(torch.arange(self.size), torch.arange(self.size), indexing="ij")
        full = 0.3 + 0.2 * torch.sin((xx + i) / 3.0) * torch.cos(yy / 4.0)
        low = full + 0.05 * torch.randn(full.shape, generator=g)
        y0, x0 = (int(v) for v in torch.randint(0, self.size - self.patch + 1, (2,), generator=g))
        sl = (slice(y0, y0 + self.patch), slice(x0, x0 + self.patch))
        return {"low": low[sl][None].float(), "full": full[sl][None].float(), "index": i}


class ToyNet(nn.Module):
    """conv-BN-ReLU-conv residual net (BN gives buffers for EMA/resume checks)."""

    def __init__(self, bn: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.c2 = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(self.drop(torch.relu(self.bn(self.c1(x)))))


class ToyObjective(nn.Module):
    """MSE + 0.1 x L1 as two named components; ``poison`` = {call_number: component}."""

    def __init__(self, poison: dict[int, str] | None = None) -> None:
        super().__init__()
        self.poison = poison or {}
        self.calls = 0

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.calls += 1
        comps = {"mse": (pred - target).square().mean(), "l1": 0.1 * (pred - target).abs().mean()}
        bad = self.poison.get(self.calls)
        if bad is not None:
            comps[bad] = comps[bad] * float("nan")
        return comps["mse"] + comps["l1"], comps


def make_trainer(
    out: Path,
    *,
    env: DistEnv | None = None,
    objective: nn.Module | None = None,
    model: Callable[[], nn.Module] | None = None,
    n: int = 32,
    batch_size: int = 4,
    export: Any = None,
    val: Any = None,
    **overrides: Any,
) -> Trainer:
    """A seeded Trainer on toy data; ``model`` is a factory; ``overrides`` are LoopConfig fields."""
    env = env or DistEnv()
    base: dict[str, Any] = {
        "output_dir": out,
        "steps": 12,
        "seed": 3,
        "precision": "fp32",
        "channels_last": False,
        "checkpoint": {"every_steps": 4},
        "validation": {"every_steps": 0, "window": None},
        "log": {"every_steps": 2, "tensorboard": False},
    }
    base.update(overrides)
    cfg = LoopConfig.model_validate(base)
    torch.manual_seed(cfg.seed)
    net = model() if model is not None else ToyNet()  # built after seeding
    batches = EpochBatches(
        ToyPairs(n=n, seed=cfg.seed),
        batch_size=batch_size // env.world_size,
        env=env,
        seed=cfg.seed,
    )
    return Trainer(
        cfg, net, objective or ToyObjective(), batches, env=env, export=export, val_batches=val
    )


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.base.state_dict().items()}
