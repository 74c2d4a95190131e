"""Inference precision: CPU capability detection, fp32/bf16 choice and the fast predict path.

bf16 pays off only where the hardware has bf16 matrix units: Intel AMX (``amx_bf16``) or
AVX512-BF16 on CPUs, or a CUDA GPU with bf16 support. On AVX2-only CPUs oneDNN refuses bf16
convolutions, so ``"auto"`` resolves to fp32 there and an explicit ``bf16`` is refused before any
work; what runs where is decided in :mod:`pipeline.models.capability`. Models always take and return
fp32 tensors; bf16 is an internal compute type, and residual additions stay in fp32 so the input
image is never quantised (see docs/models.md for the measured HU error).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.capability import capability, require

log = logging.getLogger(__name__)


_NAMES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


def precision_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"fp32"``/``"bf16"`` (or a dtype) -> ``torch.float32``/``torch.bfloat16``."""
    if isinstance(name, torch.dtype):
        if name not in (torch.float32, torch.bfloat16):
            raise ValueError(f"precision dtype must be float32 or bfloat16, found {name}")
        return name
    key = str(name).lower()
    if key not in _NAMES:
        raise ConfigError(f"precision must be one of fp32, bf16; found {name!r}")
    return _NAMES[key]


def precision_label(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bf16"``, ``torch.float32`` -> ``"fp32"``."""
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def bf16_pays(model: nn.Module | None, device: str | torch.device) -> bool:
    """Whether bf16 is worth it for ``model`` on ``device`` (given native bf16 hardware).

    On CPUs only the fused DRL-E path gains (3.7x on the EPYC, docs/benchmarks.md R4b); MONAI's
    BasicUNet under autocast runs no faster in bf16 than fp32 (R4b), so ``auto`` keeps it fp32.
    """
    from pipeline.models.drle import DRLE

    return model is None or torch.device(device).type == "cuda" or isinstance(model, DRLE)


def resolve_precision(
    requested: str | torch.dtype = "auto",
    device: str | torch.device = "cpu",
    model: nn.Module | None = None,
) -> torch.dtype:
    """Turn ``"auto" | "fp32" | "bf16"`` into the compute dtype for ``device``.

    ``auto`` picks bf16 only where :mod:`pipeline.models.capability` found it both working and
    native (AMX / AVX512-BF16 CPUs, bf16 GPUs), so it never picks a path that can fail, and, when
    ``model`` is given, only where bf16 pays for it (:func:`bf16_pays`). An explicit ``bf16``
    that does not run here (AVX2-only CPUs) is refused with a
    :class:`~pipeline.errors.ConfigError` (exit 2) before any work; an emulated one warns.
    """
    if isinstance(requested, str) and requested.lower() not in ("auto", *_NAMES):
        raise ConfigError(f"precision must be one of auto, fp32, bf16; found {requested!r}")
    cap = capability(device)
    if isinstance(requested, str) and requested.lower() == "auto":
        use = cap.bf16.usable_by_auto and bf16_pays(model, device)
        return torch.bfloat16 if use else torch.float32
    dtype = precision_dtype(requested)
    require(cap, dtype)
    return dtype


@contextmanager
def autocast(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Autocast context for compute ``dtype`` on ``device`` (a no-op for fp32)."""
    dev = torch.device(device)
    ctx = torch.autocast(dev.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    with ctx:
        yield


def prepare_for_inference(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """An eval-mode copy of ``model`` ready for fast inference (the caller's model is untouched).

    DRL-E models become a :class:`~pipeline.models.fused.FusedDRLE` (BN folded, conv+ReLU fused,
    no concatenations) computing in ``dtype``; other models get their BatchNorms folded into the
    preceding convs (:func:`~pipeline.models.fused.fold_batchnorm`) and channels-last memory
    format, and run under autocast in :func:`predict`. Input and output stay fp32 either way.
    """
    from pipeline.models.drle import DRLE
    from pipeline.models.fused import FusedDRLE, fold_batchnorm

    dtype = precision_dtype(dtype)
    src = copy.deepcopy(model).eval()
    prepared: nn.Module
    if isinstance(src, DRLE):
        prepared = FusedDRLE(src, dtype)
    else:
        with torch.no_grad():
            fold_batchnorm(src)
        prepared = src.to(memory_format=torch.channels_last)
    prepared.compute_dtype = dtype  # type: ignore[assignment]
    return prepared


def predict(
    model: nn.Module, x: torch.Tensor, dtype: torch.dtype | str = torch.float32
) -> torch.Tensor:
    """Run ``model`` on (B,1,H,W) input without gradients; returns fp32 (B,1,H,W).

    bf16 runs under autocast with channels-last input; pass a model from
    :func:`prepare_for_inference` (its own compute dtype is then used) for the fused fast path.
    """
    from pipeline.models.fused import FusedDRLE

    dt = precision_dtype(getattr(model, "compute_dtype", dtype))
    x = x.float()
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if dt == torch.bfloat16 and not isinstance(model, FusedDRLE):
                with autocast(x.device, dt):
                    y = model(x.contiguous(memory_format=torch.channels_last))
            else:
                y = model(x)
    finally:
        model.train(was_training)
    return y.float().contiguous()
