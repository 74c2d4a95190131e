"""Detection of NaN/inf in the loss components and in the gradients, named for the user."""

from __future__ import annotations

import math

import torch
from torch import nn


def nonfinite_components(total: torch.Tensor, components: dict[str, torch.Tensor]) -> list[str]:
    """Names (``component=value``) of loss terms that are NaN or inf (``total`` only if none)."""
    bad = [
        f"{name}={float(v.detach().float().mean()):g}"
        for name, v in components.items()
        if not bool(torch.isfinite(v.detach()).all())
    ]
    if not bad and not bool(torch.isfinite(total.detach()).all()):
        bad.append(f"total={float(total.detach().float().mean()):g}")
    return bad


def grad_norm(params: list[nn.Parameter]) -> torch.Tensor:
    """Global L2 norm of the gradients (fp32), NaN/inf when any gradient is not finite."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])
    return torch.linalg.vector_norm(norms)


def nonfinite_grads(model: nn.Module, limit: int = 5) -> list[str]:
    """Names of parameters whose gradient holds NaN or inf (at most ``limit``)."""
    bad: list[str] = []
    for name, p in model.named_parameters():
        if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
            bad.append(name)
            if len(bad) >= limit:
                break
    return bad


def clip_(params: list[nn.Parameter], norm: torch.Tensor, max_norm: float | None) -> None:
    """Scale gradients so their global norm is at most ``max_norm`` (given the measured norm)."""
    if max_norm is None or not math.isfinite(float(norm)):
        return
    coef = max_norm / (float(norm) + 1e-6)
    if coef < 1.0:
        for p in params:
            if p.grad is not None:
                p.grad.detach().mul_(coef)
