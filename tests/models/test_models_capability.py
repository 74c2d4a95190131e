"""Capability detection: probes agree with the ops themselves, per CPU class, on every machine.

The in-process tests assert the behaviour of the class this machine has; the subprocess test
caps oneDNN at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN then refuses bf16 exactly as on an
AVX2-only EPYC) so the AVX2 path is tested on AMX/AVX-512 machines too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pipeline.models import capability as C
from pipeline.models.precision import predict, prepare_for_inference, resolve_precision
from pipeline.models.registry import build_model, model_names

pytestmark = pytest.mark.cpu_class


def _runs(fn: object) -> bool:
    try:
        fn()  # type: ignore[operator]
    except RuntimeError:
        return False
    return True


def test_probe_agrees_with_the_private_op() -> None:
    """Oracle: call oneDNN's fused op directly in bf16 and fp32 and compare with the probe."""
    cap = C.capability("cpu")
    op = torch.ops.mkldnn._convolution_pointwise

    def conv(dtype: torch.dtype) -> None:
        x = torch.rand(1, 8, 12, 12).to(dtype).contiguous(memory_format=torch.channels_last)
        w = torch.rand(8, 8, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
        op(x, w, None, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")

    assert cap.fused_bf16.runs == _runs(lambda: conv(torch.bfloat16))
    assert cap.fused_fp32.runs == _runs(lambda: conv(torch.float32))
    assert cap.bf16.runs == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if not cap.bf16.runs:
        assert "avx512bw" in cap.bf16.detail  # the refusal names the missing feature


def test_cpu_class_is_consistent_with_flags() -> None:
    cap = C.capability("cpu")
    flags = C.cpu_flags()
    assert cap.cpu_class in ("amx-bf16", "avx512-bf16", "avx512", "avx2", "other")
    if cap.cpu_class == "amx-bf16":
        assert "amx_bf16" in flags and cap.bf16.native
    if cap.cpu_class == "avx2":
        assert not cap.bf16.native
    if cap.bf16.native:
        assert cap.bf16.runs  # "native" never claims a path that fails
    assert cap.model_name and cap.cpu_class in cap.describe()


def test_auto_never_picks_a_failing_path() -> None:
    """Whatever this CPU is, the precision ``auto`` picks runs for every registered model."""
    dtype = resolve_precision("auto", "cpu")
    x = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    for name in model_names():
        torch.manual_seed(0)
        model = build_model(name).eval()
        y = predict(prepare_for_inference(model, dtype), x)
        assert y.shape == x.shape and torch.isfinite(y).all(), name
        with torch.no_grad():
            ref = model(x)
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(y, ref, atol=tol, rtol=tol, msg=name)


_AVX2_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from pipeline.models import capability as C
    from pipeline.models.drle import DRLE
    from pipeline.models.fused import FusedDRLE, use_fused_kernels
    from pipeline.models.precision import resolve_precision
    from pipeline.errors import ConfigError
    cap = C.capability("cpu")
    out = {"class": cap.cpu_class, "bf16_runs": cap.bf16.runs, "fused32": cap.fused_fp32.runs,
           "auto": str(resolve_precision("auto", "cpu")),
           "fused_bf16_used": use_fused_kernels(torch.device("cpu"), torch.bfloat16)}
    try:
        resolve_precision("bf16", "cpu")
        out["explicit"] = "accepted"
    except ConfigError as exc:
        out["explicit"] = str(exc)
    torch.manual_seed(0)
    m = DRLE(channels=8).eval()
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        out["fused_fp32_err"] = (FusedDRLE(m, torch.float32)(x) - m(x)).abs().max().item()
    print(json.dumps(out))
    """
)


def _avx2_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    return env


def test_avx2_class_refuses_bf16_and_runs_fp32_fused() -> None:
    """On an AVX2-capped oneDNN: class avx2, auto -> fp32, explicit bf16 refused, fp32 fused ok."""
    proc = subprocess.run(
        [sys.executable, "-c", _AVX2_SCRIPT],
        env=_avx2_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["class"] == "avx2"
    assert out["bf16_runs"] is False and out["fused32"] is True
    assert out["auto"] == "torch.float32"
    assert out["fused_bf16_used"] is False
    assert "cannot run bf16" in out["explicit"] and "avx512bw" in out["explicit"]
    assert out["fused_fp32_err"] < 1e-5


def test_avx2_denoise_bf16_refused_before_any_work(tmp_path: Path) -> None:
    """``ldct denoise --precision bf16`` on AVX2: exit 2, one clear line, nothing written."""
    import numpy as np

    from pipeline.io.write import write_new_series

    src = tmp_path / "in"
    hu = np.full((2, 32, 32), 40.0, dtype=np.float32)
    write_new_series(
        hu,
        (2.0, 0.7, 0.7),
        (0.0, 0.0, 0.0),
        np.eye(3),
        src,
        patient_id="P1",
        patient_name="Test^Patient",
        series_description="AXIAL",
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli.main", "denoise", str(src), "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--precision", "bf16"],
        env=_avx2_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot run bf16" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
