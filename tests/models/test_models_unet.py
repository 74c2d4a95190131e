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


@pytest.mark.parametrize(
    ("shape", "sigma", "mode"),
    [
        ((40, 52), 0.7, "mirror"),
        ((40, 52), 2.5, "mirror"),
        ((40, 52), 8.0, "mirror"),
        ((12, 9), 8.0, "nearest"),  # radius 24 > the image: edge replication
        ((12, 30), 4.0, "nearest"),  # radius 12 == the height: edge replication
    ],
)
def test_gaussian_lowpass_is_scipys_filter(shape: tuple[int, int], sigma: float, mode: str) -> None:
    """Oracle: scipy.ndimage (mirror borders; edge replication when the image is too small)."""
    from scipy.ndimage import gaussian_filter

    from pipeline.models.monai_nets import gaussian_lowpass

    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, *shape)))
    got = gaussian_lowpass(x, sigma).numpy()
    want = np.stack(
        [
            [gaussian_filter(x[b, c].numpy(), sigma, mode=mode, truncate=3.0) for c in range(3)]
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("noise_norm", [False, True])
def test_lowcut_leaves_a_constant_correction_out(noise_norm: bool) -> None:
    """A network whose correction is a pure offset shifts mean HU; the low-cut removes it."""
    feats = (4, 4, 8, 8, 8, 4)
    x = 0.25 + 0.01 * torch.rand(1, 1, 48, 64)
    for sigma, shifted in ((0.0, True), (4.0, False)):
        m = EdgeUNet(features=feats, noise_norm=noise_norm, lowcut_sigma=sigma).eval()
        with torch.no_grad():
            m.unet.final_conv.bias.fill_(0.5)  # weights stay zero: correction == 0.5 (x sd)
        with torch.inference_mode():
            d = m(x) - x
        if shifted:
            assert float(d.abs().min()) > 1e-4
        else:
            torch.testing.assert_close(d, torch.zeros_like(d), atol=1e-6, rtol=0)


def test_lowcut_keeps_fine_structure_and_validates() -> None:
    """The guard removes only the correction's low-pass: a trained-like net still corrects."""
    a = _trained_like(EdgeUNet(features=(4, 4, 8, 8, 8, 4)))
    b = EdgeUNet(features=(4, 4, 8, 8, 8, 4), lowcut_sigma=3.0).eval()
    b.load_state_dict(a.state_dict())  # the guard has no weights: old checkpoints load
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        ca, cb = a(x) - x, b(x) - x
    from pipeline.models.monai_nets import gaussian_lowpass

    torch.testing.assert_close(cb, ca - gaussian_lowpass(ca, 3.0), atol=1e-5, rtol=1e-4)
    assert float(cb.std()) > 0.1 * float(ca.std())
    with pytest.raises(ConfigError, match="lowcut_sigma"):
        EdgeUNet(lowcut_sigma=-1.0)
    with pytest.raises(ConfigError, match="lowcut_sigma"):
        EdgeUNet(lowcut_sigma=2.0, residual=False)


def test_head_backbone_matches_monais_forward_and_starts_as_identity() -> None:
    """The head path re-runs BasicUNet's forward to keep its last features: oracle MONAI's own."""
    feats = (4, 4, 8, 8, 8, 4)
    plain = _trained_like(EdgeUNet(features=feats, noise_norm=True))
    headed = EdgeUNet(features=feats, noise_norm=True, head_features=6).eval()
    missing = headed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("head.") for k in missing)
    x = 0.25 + 0.01 * torch.rand(2, 1, 40, 56)
    with torch.inference_mode():
        torch.testing.assert_close(headed(x), plain(x))  # zero-initialised head adds nothing
    with torch.no_grad():
        headed.head[-1].weight.normal_(0, 0.1)  # type: ignore[index]
    with torch.inference_mode():
        assert float((headed(x) - plain(x)).abs().max()) > 1e-5  # and it is in the path
    fresh = EdgeUNet(features=feats, noise_norm=True, head_features=6).eval()
    with torch.inference_mode():
        torch.testing.assert_close(fresh(x), x)
    with pytest.raises(ConfigError, match="head_features"):
        EdgeUNet(head_features=-2)


@pytest.mark.parametrize("n", [2, 4])
def test_flip_ensemble_is_the_mean_of_the_unflipped_flips_in_eval_only(n: int) -> None:
    """Oracle: the flipped forwards of the plain net, un-flipped and averaged by hand."""
    feats = (4, 4, 8, 8, 8, 4)
    plain = _trained_like(EdgeUNet(features=feats, noise_norm=True, head_features=4))
    ens = EdgeUNet(features=feats, noise_norm=True, head_features=4, flip_ensemble=n)
    ens.load_state_dict(plain.state_dict())
    x = 0.25 + 0.01 * torch.rand(2, 1, 36, 52)
    flips = [(), (-1,), (-2,), (-2, -1)][:n]
    with torch.inference_mode():
        parts = [plain(x.flip(d)).flip(d) if d else plain(x) for d in flips]
        want = torch.stack(parts).mean(0)
        torch.testing.assert_close(ens.eval()(x), want)
        assert float((want - plain(x)).abs().max()) > 1e-5  # the flips do differ
    ens.train()
    plain.train()
    torch.testing.assert_close(ens(x), plain(x))  # training runs the plain forward
    with pytest.raises(ConfigError, match="flip_ensemble"):
        EdgeUNet(flip_ensemble=3)


def test_nlm_prior_gain_adds_the_products_nlm_correction_and_starts_at_zero() -> None:
    """Oracle: ``ldct denoise --model nlm`` (scikit-image NLM with the blind sigma)."""
    from pipeline.intensity import hu_to_model, model_to_hu
    from pipeline.models.classical import ClassicalConfig, estimate_noise_sd_hu, nlm_slice

    feats = (4, 4, 8, 8, 8, 4)
    plain = _trained_like(EdgeUNet(features=feats, noise_norm=True, head_features=4))
    fused = EdgeUNet(features=feats, noise_norm=True, head_features=4, nlm_prior=True)
    fresh = fused.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(fresh) == sorted(
        ["prior_gain"] + [f"prior_in.{k}.{p}" for k in ("enc0", "head") for p in ("weight", "bias")]
    )
    fused.eval()
    g = np.random.default_rng(1)
    hu = np.full((2, 48, 40), 40.0, np.float32) + 20 * g.standard_normal((2, 48, 40)).astype(
        np.float32
    )
    hu[:, 10:30, 12:24] += 300.0
    x = hu_to_model(torch.from_numpy(hu)[:, None])
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), plain(x))  # zero-initialised: the plain net
        with_prior = fused.attach_prior(x)
        assert with_prior.shape == (2, 2, 48, 40)
        torch.testing.assert_close(fused(with_prior), fused(x))  # given or computed: the same
        fused.prior_gain.fill_(1.0)
        got = (model_to_hu(fused(x)) - model_to_hu(plain(x)))[:, 0].numpy()
    want = np.stack([nlm_slice(h, estimate_noise_sd_hu(h), ClassicalConfig()) - h for h in hu])
    assert np.abs(want).max() > 5.0  # NLM does change the image
    np.testing.assert_allclose(got, want, atol=0.05)  # HU
    from pipeline.models.monai_nets import nlm_prior_hu

    assert fused.training_prior is nlm_prior_hu and plain.training_prior is None
    assert plain.attach_prior(x) is x  # no prior: whole slices go in as they are
    with pytest.raises(ConfigError, match="nlm_prior needs noise_norm"):
        EdgeUNet(nlm_prior=True)
