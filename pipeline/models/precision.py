"""Inference precision: CPU capability detection, fp32/bf16 choice and the fast predict path.

bf16 pays off only where the hardware has bf16 matrix units: Intel AMX (``amx_bf16``) or
AVX512-BF16 on CPUs, or a CUDA GPU with bf16 support. On AVX2-only CPUs PyTorch emulates bf16 and
convolutions get ~10x slower, so ``"auto"`` resolves to fp32 there. Models always take and return
fp32 tensors; bf16 is an internal compute type, and residual additions stay in fp32 so the input
image is never quantised (see docs/models.md for the measured HU error).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


_NAMES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class CpuCapability:
    """What this CPU offers for bf16 (from PyTorch and /proc/cpuinfo)."""

    torch_capability: str
    amx_bf16: bool
    avx512_bf16: bool
    avx2: bool

    @property
    def fast_bf16(self) -> bool:
        """True when bf16 convolutions run on native hardware (AMX or AVX512-BF16)."""
        return self.amx_bf16 or self.avx512_bf16


def _cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@lru_cache(maxsize=1)
def cpu_capability() -> CpuCapability:
    """Detect the CPU's SIMD/matrix features relevant to bf16 inference (cached)."""
    try:
        cap = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        cap = "unknown"
    flags = _cpuinfo_flags()
    return CpuCapability(
        torch_capability=cap,
        amx_bf16="amx_bf16" in flags,
        avx512_bf16="avx512_bf16" in flags,
        avx2="avx2" in flags or cap.startswith("AVX"),
    )


def precision_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"fp32"``/``"bf16"`` (or a dtype) -> ``torch.float32``/``torch.bfloat16``."""
    if isinstance(name, torch.dtype):
        if name not in (torch.float32, torch.bfloat16):
            raise ConfigError(f"precision dtype must be float32 or bfloat16, found {name}")
        return name
    key = str(name).lower()
    if key not in _NAMES:
        raise ConfigError(f"precision must be one of fp32, bf16; found {name!r}")
    return _NAMES[key]


def precision_label(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bf16"``, ``torch.float32`` -> ``"fp32"``."""
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def resolve_precision(
    requested: str | torch.dtype = "auto", device: str | torch.device = "cpu"
) -> torch.dtype:
    """Turn ``"auto" | "fp32" | "bf16"`` into the compute dtype for ``device``.

    ``auto`` picks bf16 only on CPUs with AMX/AVX512-BF16 or CUDA GPUs with bf16 support.
    An explicit ``bf16`` is honoured everywhere (with a warning where it is emulated and slow).
    """
    if isinstance(requested, str) and requested.lower() not in ("auto", *_NAMES):
        raise ConfigError(f"precision must be one of auto, fp32, bf16; found {requested!r}")
    dev = torch.device(device)
    if dev.type == "cuda":
        hw_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    elif dev.type == "cpu":
        hw_bf16 = cpu_capability().fast_bf16
    else:
        hw_bf16 = False
    if isinstance(requested, str) and requested.lower() == "auto":
        return torch.bfloat16 if hw_bf16 else torch.float32
    dtype = precision_dtype(requested)
    if dtype == torch.bfloat16 and not hw_bf16:
        log.warning("bf16 requested on %s without native bf16 support: expect slow inference", dev)
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
    no concatenations) computing in ``dtype``; other models get channels-last memory format and
    run under autocast in :func:`predict`. Input and output stay fp32 either way.
    """
    from pipeline.models.drle import DRLE
    from pipeline.models.fused import FusedDRLE

    dtype = precision_dtype(dtype)
    src = copy.deepcopy(model).eval()
    prepared: nn.Module
    if isinstance(src, DRLE):
        prepared = FusedDRLE(src, dtype)
    else:
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
