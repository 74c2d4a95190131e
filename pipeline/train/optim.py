"""Optimizer and learning-rate schedule from the typed settings."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from pipeline.train.settings import OptimConfig, ScheduleConfig, ScheduleKind


def build_optimizer(params: Iterable[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam or AdamW (the reference method: Adam, lr 1e-3, beta1 0.5)."""
    kwargs = {"lr": cfg.lr, "betas": cfg.betas, "eps": cfg.eps, "weight_decay": cfg.weight_decay}
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, **kwargs)  # type: ignore[arg-type]
    return torch.optim.Adam(params, **kwargs)  # type: ignore[arg-type]


def lr_factor(step: int, cfg: ScheduleConfig, total_steps: int) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based)."""
    warm = 1.0
    if cfg.warmup_steps and step < cfg.warmup_steps:
        warm = (step + 1) / cfg.warmup_steps
    if cfg.kind is ScheduleKind.MULTISTEP:
        return warm * cfg.gamma ** sum(step >= m for m in cfg.milestones)
    if cfg.kind is ScheduleKind.COSINE:
        span = max(1, total_steps - cfg.warmup_steps)
        t = min(1.0, max(0, step - cfg.warmup_steps) / span)
        lo = cfg.min_lr_factor
        return warm * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t)))
    return warm


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per optimizer step; its state dict resumes exactly."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda=lambda s: lr_factor(s, cfg, total_steps)
    )
