"""Exponential moving average (EMA) of model weights.

``shadow = decay * shadow + (1 - decay) * weights`` after every optimizer step, in fp32, for
floating parameters and buffers (BatchNorm running stats included); integer buffers (e.g.
``num_batches_tracked``) are copied. The shadow is a plain state dict so it checkpoints and
resumes exactly, and :meth:`EMA.copy_to` loads it into a model for validation or export.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """EMA of ``model``'s state dict (kept on the model's device, fp32)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {
            k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
            for k, v in model.state_dict().items()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average."""
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if v.is_floating_point():
                s.mul_(self.decay).add_(v.detach().float(), alpha=1.0 - self.decay)
            else:
                s.copy_(v)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Restart the average at the model's current weights."""
        for k, v in model.state_dict().items():
            self.shadow[k].copy_(v.detach())

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (same architecture)."""
        model.load_state_dict(
            {k: v.to(model.state_dict()[k].dtype) for k, v in self.shadow.items()}, strict=True
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise KeyError(f"EMA state does not match the model: keys {sorted(missing)[:5]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)
