"""EdgeUNet (MONAI BasicUNet + Sobel): residual scale, inference path, the unet-s preset."""

from __future__ import annotations

import numpy as np
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


@pytest.mark.parametrize("sd", [0.002, 0.01, 0.05])
def test_noise_sd_estimate_equals_the_wavelet_mad_estimator(sd: float) -> None:
    """Oracle: PyWavelets' finest Haar (db1) diagonal detail, median |d| / Phi^-1(0.75).

    (scikit-image's estimate_sigma is the same estimator on db2.)"""
    import pywt
    from scipy.stats import norm

    from pipeline.models.monai_nets import estimate_noise_sd

    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    img = 0.25 + 0.1 * ((xx - 64) ** 2 + (yy - 64) ** 2 < 40**2).float()  # an edge, not only noise
    x = (img + sd * torch.randn(128, 128, generator=g)).view(1, 1, 128, 128)
    ours = float(estimate_noise_sd(x))
    _, (_, _, diag) = pywt.dwt2(x[0, 0].double().numpy(), "db1")
    ref = float(np.median(np.abs(diag[diag != 0])) / norm.ppf(0.75))
    assert ours == pytest.approx(ref, rel=0.005)
    assert ours == pytest.approx(sd, rel=0.1)


def test_noise_sd_ignores_constant_padding_and_survives_a_flat_image() -> None:
    from pipeline.models.monai_nets import estimate_noise_sd

    g = torch.Generator().manual_seed(2)
    x = torch.zeros(2, 1, 64, 64)
    x[0, 0, :, :16] = 0.25 + 0.01 * torch.randn(64, 16, generator=g)  # 3/4 constant padding
    sd = estimate_noise_sd(x).flatten()
    assert float(sd[0]) == pytest.approx(0.01, rel=0.15)
    assert torch.isfinite(sd).all() and float(sd[1]) > 0  # all-constant: the floor, not NaN


def test_noise_normalised_unet_is_the_identity_untrained_and_scales_with_the_noise() -> None:
    model = build_model("unet-nn").eval()
    x = 0.25 + 0.01 * torch.randn(1, 1, 48, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), x)  # zero-initialised final conv
        trained = _trained_like(model)
        # the network sees x in units of its own noise SD: the same image with the noise and
        # contrast scaled about water by k gives a correction scaled by k (bias-free in z;
        # the intensity channel is the one input that is not scaled, so compare with it fixed)
        water = 1024.0 / 4095.0
        y1 = trained(x) - x
        feats1 = trained.noise_features(x, torch.tensor(0.01).view(1, 1, 1, 1))
        x2 = water + 2.0 * (x - water)
        feats2 = trained.noise_features(x2, torch.tensor(0.02).view(1, 1, 1, 1))
        torch.testing.assert_close(
            feats1[:, [0, 2, 3, 4, 5]], feats2[:, [0, 2, 3, 4, 5]], atol=1e-4, rtol=1e-3
        )
    assert y1.abs().max() > 0
    fast = prepare_for_inference(trained, torch.float32)
    torch.testing.assert_close(predict(fast, x, torch.float32), trained(x), atol=1e-5, rtol=1e-4)
