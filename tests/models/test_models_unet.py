"""EdgeUNet (MONAI BasicUNet + Sobel): residual scale, inference path, the unet-s preset."""

from __future__ import annotations

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.monai_nets import EdgeUNet
from pipeline.models.precision import predict, prepare_for_inference
from pipeline.models.registry import build_model


def _trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random non-trivial weights and BN statistics (an untrained residual net is the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def test_inference_path_matches_the_model_with_residual_scale() -> None:
    model = _trained_like(build_model("unet-s"))
    x = torch.rand(2, 1, 40, 52)
    fast = prepare_for_inference(model, torch.float32)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # folded
    with torch.inference_mode():
        torch.testing.assert_close(predict(fast, x), model(x), rtol=1e-4, atol=1e-5)


def test_residual_scale_multiplies_the_correction() -> None:
    a = _trained_like(EdgeUNet(features=(4, 4, 8, 8, 8, 4), residual_scale=1.0))
    b = EdgeUNet(features=(4, 4, 8, 8, 8, 4), residual_scale=0.03).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(b(x) - x, 0.03 * (a(x) - x), rtol=1e-4, atol=1e-7)
    with pytest.raises(ConfigError, match="residual_scale"):
        EdgeUNet(residual_scale=0.0)


def test_unet_s_preset_is_a_quarter_of_unet() -> None:
    from pipeline.models.flops import gflops_per_slice

    small, big = build_model("unet-s"), build_model("unet")
    assert small.residual_scale == pytest.approx(0.03)
    ratio = gflops_per_slice(small, 128) / gflops_per_slice(big, 128)
    assert 0.2 < ratio < 0.35
    x = torch.rand(1, 1, 33, 47)  # any size: padded to a multiple of 16 and cropped back
    with torch.inference_mode():
        torch.testing.assert_close(small.eval()(x), x)  # zero-initialised final conv: identity
