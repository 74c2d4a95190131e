"""Whole-slice validation with the evaluation module's metrics (the project's only PSNR/SSIM).

The model output and the full-dose target are mapped from the model range to an HU window
(``soft_tissue`` [-160, 240] HU by default, clipped, [0, 1], data_range 1), or compared in the
model range itself (data_range 1 over [-1024, 3071] HU) when no window is set. Values are
averaged per patient first (when batches carry ``patient``), then over patients. The low-dose
input's metrics are reported alongside, so the gain is visible in the log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from pipeline.evaluate.metrics import mse, psnr, ssim
from pipeline.intensity import model_to_window


def _view(x: torch.Tensor, window: str | None) -> torch.Tensor:
    return x if window is None else model_to_window(x, window)


def _patients(batch: dict[str, Any], n: int) -> list[str]:
    pats = batch.get("patient")
    if isinstance(pats, list | tuple) and len(pats) == n:
        return [str(p) for p in pats]
    return ["all"] * n


@torch.no_grad()
def validate(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    *,
    device: torch.device,
    window: str | None = "soft_tissue",
    ssim_kernel: str = "gaussian",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    max_slices: int | None = None,
    objective: nn.Module | None = None,
) -> dict[str, float]:
    """Mean PSNR/SSIM (and model-range MSE, optional objective loss) over whole slices.

    Keys: ``psnr``, ``ssim``, ``mse``, ``input_psnr``, ``input_ssim``, ``slices`` and ``loss``
    when ``objective`` is given. ``model`` is put in eval mode and restored afterwards.
    """
    was_training = model.training
    model.eval()
    per_patient: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seen = 0
    loss_sum, loss_n = 0.0, 0
    try:
        for batch in batches:
            low = batch["low"].to(device, torch.float32)
            full = batch["full"].to(device, torch.float32)
            if max_slices is not None:
                room = max_slices - seen
                if room <= 0:
                    break
                low, full = low[:room], full[:room]
            inp = low.contiguous(memory_format=torch.channels_last) if channels_last else low
            ctx = (
                torch.autocast(device.type, dtype=amp_dtype)
                if amp_dtype is not None
                else nullcontext()
            )
            with ctx:
                pred = model(inp)
            pred = pred.float().contiguous()
            if objective is not None:
                total, _ = objective(pred, full)
                loss_sum += float(total) * pred.shape[0]
                loss_n += pred.shape[0]
            pv, fv, lv = _view(pred, window), _view(full, window), _view(low, window)
            values = {
                "psnr": psnr(pv, fv, data_range=1.0),
                "ssim": ssim(pv, fv, data_range=1.0, kernel=ssim_kernel),  # type: ignore[arg-type]
                "mse": mse(pred, full),
                "input_psnr": psnr(lv, fv, data_range=1.0),
                "input_ssim": ssim(lv, fv, data_range=1.0, kernel=ssim_kernel),  # type: ignore[arg-type]
            }
            for i, pat in enumerate(_patients(batch, pred.shape[0])):
                for k, v in values.items():
                    per_patient[pat][k].append(float(v[i]))
            seen += pred.shape[0]
    finally:
        model.train(was_training)
    out: dict[str, float] = {"slices": float(seen)}
    if seen == 0:
        return out
    keys = next(iter(per_patient.values())).keys()
    for k in keys:
        pat_means = [sum(d[k]) / len(d[k]) for d in per_patient.values()]
        out[k] = sum(pat_means) / len(pat_means)
    if loss_n:
        out["loss"] = loss_sum / loss_n
    return out
