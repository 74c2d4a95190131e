"""Precision choice, fused inference path == reference model, bf16 HU error bound."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize
from torch import nn

from pipeline.errors import ConfigError, ExitCode
from pipeline.intensity import hu_to_model, model_to_hu
from pipeline.models import capability as C
from pipeline.models import fused as fused_mod
from pipeline.models import precision as P
from pipeline.models.drle import DRLE
from pipeline.models.fused import FusedDRLE

pytestmark = pytest.mark.cpu_class


def _cap(bf16_runs: bool, native: bool) -> C.Capability:
    real = C.capability("cpu")
    bf16 = C.PathSupport(bf16_runs, native, "test")
    return dataclasses.replace(real, bf16=bf16, fused_bf16=bf16)


@pytest.mark.parametrize(
    ("runs", "native", "expected"),
    [(True, True, torch.bfloat16), (True, False, torch.float32), (False, False, torch.float32)],
)
def test_auto_precision_follows_capability(
    monkeypatch: pytest.MonkeyPatch, runs: bool, native: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(P, "capability", lambda _dev: _cap(runs, native))
    assert P.resolve_precision("auto", "cpu") == expected
    assert P.resolve_precision("fp32", "cpu") == torch.float32


def test_auto_keeps_fp32_for_models_bf16_does_not_speed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.models.monai_nets import EdgeUNet

    monkeypatch.setattr(P, "capability", lambda _dev: _cap(True, True))
    unet = EdgeUNet(features=(4, 4, 4, 4, 4, 4))
    assert P.resolve_precision("auto", "cpu", DRLE(channels=8)) == torch.bfloat16
    assert P.resolve_precision("auto", "cpu", unet) == torch.float32
    assert P.resolve_precision("bf16", "cpu", unet) == torch.bfloat16  # explicit is honoured


def test_explicit_bf16_refused_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "capability", lambda _dev: _cap(False, False))
    with pytest.raises(ConfigError, match="avx512bw") as info:
        P.resolve_precision("bf16", "cpu")
    assert info.value.exit_code == ExitCode.USAGE and "Use fp32" in str(info.value)


def test_explicit_emulated_bf16_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(P, "capability", lambda _dev: _cap(True, False))
    with caplog.at_level(logging.WARNING):
        assert P.resolve_precision("bf16", "cpu") == torch.bfloat16
    assert "emulated" in caplog.text


def test_bad_precision_name() -> None:
    with pytest.raises(ConfigError, match="auto, fp32, bf16"):
        P.resolve_precision("fp16")


def _trained_like_drle(channels: int = 16, seed: int = 0) -> DRLE:
    """DRL-E with random weights, realistic BN statistics and a ~20 HU output correction."""
    torch.manual_seed(seed)
    m = DRLE(channels=channels, trainable_edges=True)
    x = torch.rand(4, 1, 48, 48)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(x)  # populate BN running statistics from data
        nn.init.normal_(m.out.weight, std=1e-3)
        m.edges.scale.mul_(torch.tensor([1.0, 0.5, 2.0, 1.5]))  # type: ignore[union-attr]
    return m.eval()


def _ct_slice(size: int = 96) -> torch.Tensor:
    ph = resize(shepp_logan_phantom(), (size, size), order=1, anti_aliasing=True)
    hu = -1000.0 + ph * 2000.0  # air .. ~ bone
    rng = np.random.default_rng(0)
    hu = hu + rng.normal(0.0, 30.0, hu.shape)  # low-dose-like noise
    return hu_to_model(torch.from_numpy(hu).float())[None, None]


@pytest.mark.parametrize("fast", [True, False])
def test_fused_fp32_equals_model(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    monkeypatch.setattr(fused_mod, "use_fused_kernels", lambda _d, _t: fast)
    m = _trained_like_drle()
    x = torch.rand(2, 1, 29, 34)
    with torch.no_grad():
        torch.testing.assert_close(FusedDRLE(m, torch.float32)(x), m(x), atol=2e-6, rtol=1e-5)
        plain = DRLE(channels=8, edge=False, residual=False, batch_norm=False).eval()
        torch.testing.assert_close(FusedDRLE(plain, torch.float32)(x), plain(x))


def test_predict_fp32_matches_and_keeps_training_flag() -> None:
    m = _trained_like_drle().train()
    x = _ct_slice(48)
    m.eval()
    with torch.no_grad():
        ref = m(x)
    m.train()
    torch.testing.assert_close(P.predict(m, x, "fp32"), ref)
    assert m.training
    prepared = P.prepare_for_inference(m, torch.float32)
    torch.testing.assert_close(P.predict(prepared, x), ref, atol=2e-6, rtol=1e-5)


def test_bf16_on_this_cpu_class() -> None:
    """Where bf16 runs: the HU error bound. Where it cannot (AVX2-only): refused before work."""
    m = _trained_like_drle()
    x = _ct_slice(96)
    cap = C.capability("cpu")
    if not cap.bf16.runs:
        assert cap.cpu_class in ("avx2", "other")
        assert P.resolve_precision("auto", "cpu") == torch.float32
        with pytest.raises(ConfigError, match="cannot run bf16"):
            P.resolve_precision("bf16", "cpu")
        return
    ref_hu = model_to_hu(P.predict(m, x, "fp32"))
    correction = (ref_hu - model_to_hu(x)).abs().mean().item()
    assert correction > 5.0  # the net really changes the image (else the check is empty)
    for prepared in (P.prepare_for_inference(m, torch.bfloat16), m):
        out = P.predict(prepared, x, "bf16")
        assert out.dtype == torch.float32 and out.shape == x.shape
        err = (model_to_hu(out) - ref_hu).abs().mean().item()
        # goal <= 0.5 HU; rounding the input image itself to bf16 would already cost ~0.35 HU here,
        # so the tighter bound checks that the residual path stays fp32
        assert err <= 0.15, f"bf16 mean abs error {err:.3f} HU"


def test_fold_batchnorm_equals_the_unfolded_unet() -> None:
    """BN folded into the convs of the MONAI BasicUNet: same output, every BN gone."""
    from pipeline.models.registry import build_model

    torch.manual_seed(0)
    m = build_model("unet").eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):  # realistic statistics, not the identity
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
        nn.init.normal_(m.unet.final_conv.weight, std=0.05)  # not the zero-init identity
    x = torch.rand(2, 1, 40, 36)
    with torch.no_grad():
        ref = m(x)
        n_bn = sum(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
        prepared = P.prepare_for_inference(m, torch.float32)
    assert n_bn > 10
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in prepared.modules())
    assert (ref - x).abs().mean() > 1e-3  # the net changes the image
    torch.testing.assert_close(P.predict(prepared, x), ref, atol=1e-5, rtol=1e-4)
    assert sum(isinstance(mod, nn.BatchNorm2d) for mod in m.modules()) == n_bn  # caller's intact
