"""What each precision / kernel path can do on this machine, decided in one place.

Detect, never assume. Two questions are asked separately for every compute path:

* **does it run?** answered by *running* it once on a tiny tensor and catching the error
  (oneDNN refuses bf16 convolutions on AVX2-only CPUs with a ``RuntimeError``, although
  the op exists and ``/proc/cpuinfo`` may say "AVX512" on other machines);
* **is it fast?** answered by the hardware: bf16 matrix units (Intel AMX ``amx_bf16``,
  ``avx512_bf16``, ``avx_ne_convert``) on CPUs, compute capability >= 8.0 on CUDA.

``auto`` picks a path only when both answers are yes; an explicit request for a path that does
not run is refused before any work (:func:`require`), naming the missing CPU feature and the
alternative. ``ONEDNN_MAX_CPU_ISA`` (oneDNN's own switch) caps what oneDNN may use; setting it to
``AVX2`` on any x86-64 machine reproduces an AVX2-only CPU for oneDNN, which the tests use to
check the AVX2 behaviour on every machine.
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

#: oneDNN needs one of these for bf16 convolutions (PyTorch's ``mkldnn_bf16_device_check``).
BF16_CPU_FEATURES = "avx512bw + avx512vl + avx512dq, or avx_ne_convert"
#: Flags that mean bf16 runs on hardware units instead of being emulated through conversions.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "avx_ne_convert")
#: ``ONEDNN_MAX_CPU_ISA`` values (prefixes) that rule out native bf16 / AVX-512.
_ISA_NO_AVX512 = ("SSE41", "AVX", "AVX2")  # AVX2, AVX2_VNNI, AVX2_VNNI_2 start with "AVX2"
_ISA_NO_NATIVE_BF16 = ("AVX512_CORE", "AVX512_CORE_VNNI")


@dataclass(frozen=True)
class PathSupport:
    """One compute path: does it run here, does it run on hardware units, and why."""

    runs: bool
    native: bool
    detail: str

    @property
    def usable_by_auto(self) -> bool:
        return self.runs and self.native


@dataclass(frozen=True)
class Capability:
    """What one device offers; every decision about precision and fused kernels reads this."""

    device: str
    #: ``amx-bf16`` | ``avx512-bf16`` | ``avx512`` | ``avx2`` | ``other`` (CPU), ``cuda`` (GPU)
    cpu_class: str
    model_name: str
    torch_capability: str
    isa_cap: str
    #: bf16 convolutions (oneDNN on CPU, cuDNN on CUDA)
    bf16: PathSupport
    #: oneDNN fused conv + ReLU / add post-ops (private op ``mkldnn._convolution_pointwise``)
    fused_fp32: PathSupport
    fused_bf16: PathSupport

    def fused(self, dtype: torch.dtype) -> PathSupport:
        return self.fused_bf16 if dtype == torch.bfloat16 else self.fused_fp32

    def describe(self) -> str:
        """One line for logs and benchmark headers."""
        cap = f", ONEDNN_MAX_CPU_ISA={self.isa_cap}" if self.isa_cap else ""
        bf16 = "native" if self.bf16.usable_by_auto else ("emulated" if self.bf16.runs else "no")
        return (
            f"{self.device}: {self.model_name} (class {self.cpu_class}, torch "
            f"{self.torch_capability}{cap}); bf16 {bf16}, fused oneDNN kernels "
            f"{'yes' if self.fused_fp32.runs else 'no'}"
        )


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags of the first processor (empty when unknown)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model_name(path: Path = Path("/proc/cpuinfo")) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return " ".join(line.split(":", 1)[1].split())
    return platform.processor() or platform.machine() or "unknown CPU"


def _isa_cap() -> str:
    return (
        os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    ).upper()


def _capped(isa: str, prefixes: tuple[str, ...]) -> bool:
    if not isa or isa == "ALL":
        return False
    return any(isa == p or isa.startswith(p + "_") for p in prefixes)


def _probe(fn: object) -> str | None:
    """Run ``fn()``; None when it worked, else the first line of its error."""
    try:
        fn()  # type: ignore[operator]
    except (RuntimeError, NotImplementedError, TypeError, AttributeError) as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def _pointwise(dtype: torch.dtype) -> None:
    x = torch.rand(1, 4, 8, 8).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.rand(4, 4, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
    op = torch.ops.mkldnn._convolution_pointwise
    op(x, w, None, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
    op.binary(x, x, w, None, [1, 1], [1, 1], [1, 1], 1, "add", None, "relu", [], "")


def _bf16_conv_cpu() -> None:
    x = torch.rand(1, 4, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w = torch.rand(4, 4, 3, 3).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    F.conv2d(x, w, padding=1)
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise RuntimeError(f"oneDNN bf16 needs the CPU features {BF16_CPU_FEATURES}")


def _cpu_capability() -> Capability:
    flags, isa = cpu_flags(), _isa_cap()
    try:
        torch_cap = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        torch_cap = "unknown"
    avx512 = {"avx512bw", "avx512vl", "avx512dq"} <= flags and not _capped(isa, _ISA_NO_AVX512)
    native_flags = [f for f in NATIVE_BF16_FLAGS if f in flags]
    if _capped(isa, _ISA_NO_AVX512):
        native_flags = [f for f in native_flags if f == "avx_ne_convert" and "VNNI_2" in isa]
    elif _capped(isa, _ISA_NO_NATIVE_BF16):
        native_flags = []
    bf16_err = _probe(_bf16_conv_cpu)
    fused32_err = _probe(lambda: _pointwise(torch.float32))
    fused16_err = _probe(lambda: _pointwise(torch.bfloat16)) if bf16_err is None else bf16_err
    native = bool(native_flags) and bf16_err is None
    if "amx_bf16" in native_flags and not _capped(isa, ("AVX512_CORE_BF16", "AVX512_CORE_FP16")):
        cls = "amx-bf16"
    elif "avx512_bf16" in native_flags:
        cls = "avx512-bf16"
    elif avx512:
        cls = "avx512"
    elif "avx2" in flags or torch_cap.startswith("AVX2"):
        cls = "avx2"
    else:
        cls = "other"
    if bf16_err is not None:
        bf16_detail = f"bf16 convolutions do not run here: {bf16_err}"
    elif native:
        bf16_detail = f"native ({', '.join(native_flags)})"
    else:
        bf16_detail = "runs through conversions without bf16 units (slower than fp32)"
    return Capability(
        device="cpu",
        cpu_class=cls,
        model_name=cpu_model_name(),
        torch_capability=torch_cap,
        isa_cap=isa,
        bf16=PathSupport(bf16_err is None, native, bf16_detail),
        fused_fp32=PathSupport(fused32_err is None, True, fused32_err or "oneDNN fp32 post-ops"),
        fused_bf16=PathSupport(fused16_err is None, native, fused16_err or bf16_detail),
    )


def _cuda_capability(device: torch.device) -> Capability:
    idx = device.index if device.index is not None else torch.cuda.current_device()
    name = torch.cuda.get_device_name(idx)
    major, minor = torch.cuda.get_device_capability(idx)
    bf16_ok = bool(torch.cuda.is_bf16_supported())
    native = bf16_ok and major >= 8
    no_fused = PathSupport(False, False, "oneDNN fused kernels are CPU-only (cuDNN is used)")
    return Capability(
        device=str(device),
        cpu_class="cuda",
        model_name=f"{name} (sm_{major}{minor})",
        torch_capability=f"sm_{major}{minor}",
        isa_cap="",
        bf16=PathSupport(bf16_ok, native, "tensor cores" if native else "no bf16 tensor cores"),
        fused_fp32=no_fused,
        fused_bf16=no_fused,
    )


@lru_cache(maxsize=8)
def _cached(device: str) -> Capability:
    dev = torch.device(device)
    if dev.type == "cuda":
        return _cuda_capability(dev)
    if dev.type != "cpu":
        none = PathSupport(False, False, f"no probe for device type {dev.type!r}")
        return Capability(str(dev), dev.type, dev.type, "", "", none, none, none)
    cap = _cpu_capability()
    log.debug("capability: %s", cap.describe())
    return cap


def capability(device: str | torch.device = "cpu") -> Capability:
    """The (cached) capability of ``device``: probed once per process."""
    return _cached(str(torch.device(device)))


def require(cap: Capability, dtype: torch.dtype, what: str = "--precision bf16") -> None:
    """Refuse, before any work, a compute dtype that does not run on ``cap``'s device.

    Raises :class:`~pipeline.errors.ConfigError` (exit 2) naming the missing feature and the
    alternative; an emulated (slow) bf16 is allowed with a warning.
    """
    if dtype != torch.bfloat16:
        return
    if not cap.bf16.runs:
        feature = BF16_CPU_FEATURES if cap.device == "cpu" else "a GPU with bf16 support (sm_80+)"
        raise ConfigError(
            f"{what}: this {cap.device} ({cap.model_name}, class {cap.cpu_class}) cannot run "
            f"bf16 convolutions: it lacks {feature}. Use fp32 (or auto, which picks fp32 here)."
        )
    if not cap.bf16.native:
        log.warning(
            "%s on %s (class %s): no bf16 hardware units, bf16 is emulated and slower than fp32",
            what,
            cap.model_name,
            cap.cpu_class,
        )
