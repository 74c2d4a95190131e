"""The training objective: config validation, components, weights choice recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.config import load_config
from pipeline.errors import ConfigError, WeightsError
from pipeline.losses import weights as W
from pipeline.losses.objective import LossConfig, build_objective
from pipeline.losses.perceptual import PerceptualLoss


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = 0.25 + 0.02 * torch.rand(2, 1, 24, 24, generator=g)  # inside soft-tissue window
    return target + 0.005 * torch.randn(target.shape, generator=g), target


def test_defaults_are_reference_layers_and_imagenet():
    cfg = LossConfig()
    assert cfg.perceptual.layers == ["relu1_2", "relu2_2", "relu3_3"]
    assert cfg.perceptual.vgg_weights.value == "imagenet"
    assert cfg.perceptual.resize is None and cfg.perceptual.precision == "fp32"


def test_missing_imagenet_weights_stop_with_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match=r"ldct weights fetch.*ldct weights import FILE"):
        build_objective(LossConfig())


def test_components_and_total():
    cfg = LossConfig.model_validate(
        {"mse_weight": 2.0, "perceptual": {"vgg_weights": "random", "weight": 0.5}}
    )
    obj = build_objective(cfg)
    pred, target = _pair()
    total, comp = obj(pred, target)
    torch.testing.assert_close(comp["mse"], F.mse_loss(pred, target))
    ref, terms = PerceptualLoss(W.random_features_state(0))(pred, target)
    torch.testing.assert_close(comp["perceptual"], ref)
    assert set(comp) == {"mse", "perceptual"} | {f"perceptual/{k}" for k in terms}
    torch.testing.assert_close(total, 2.0 * comp["mse"] + 0.5 * comp["perceptual"])
    assert obj.vgg_weights == "random (untrained)"
    d = obj.describe()
    assert d["vgg_weights"] == "random (untrained)" and "seed 0" in str(d["vgg_weights_detail"])


def test_style_component_separate():
    cfg = LossConfig.model_validate(
        {
            "perceptual": {
                "vgg_weights": "random",
                "weight": 1.0,
                "layers": ["relu1_2"],
                "style_layers": ["relu2_2"],
                "style_weight": 3.0,
            }
        }
    )
    total, comp = build_objective(cfg)(*_pair())
    expected = comp["mse"] + comp["perceptual"] + 3.0 * comp["style/relu2_2"]
    torch.testing.assert_close(total, expected)


def test_perceptual_off_builds_no_vgg():
    obj = build_objective(LossConfig.model_validate({"perceptual": {"weight": 0}}))
    assert obj.perceptual is None and obj.vgg_weights == "none"
    total, comp = obj(*_pair())
    assert set(comp) == {"mse"}
    torch.testing.assert_close(total, comp["mse"])


def test_state_dict_by_path(tmp_path: Path):
    p = tmp_path / "vgg.pth"
    torch.save(W.random_features_state(seed=5), p)
    cfg = LossConfig.model_validate(
        {"perceptual": {"vgg_weights": "file", "vgg_weights_path": str(p)}}
    )
    obj = build_objective(cfg)
    assert obj.vgg_weights == "file" and str(p) in str(obj.describe()["vgg_weights_detail"])
    same = build_objective(
        LossConfig.model_validate({"perceptual": {"vgg_weights": "random", "vgg_seed": 5}})
    )
    pred, target = _pair()
    torch.testing.assert_close(obj(pred, target)[0], same(pred, target)[0])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("perceptual.vgg_weights=file", "vgg_weights_path is required"),
        ("perceptual.windows=[lung, bone]", "1 or 3 windows"),
        ("perceptual.layer_weights=[1.0]", "layer_weights has 1 entries"),
        ("perceptual.distnace=l1", "Extra inputs are not permitted"),
        ("perceptual.weight=-1", "greater than or equal to 0"),
        ("ssim_window=sofft", "unknown window"),
    ],
)
def test_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(LossConfig, overrides=[override])


def test_objective_runs_under_bf16_autocast_in_fp32():
    obj = build_objective(LossConfig.model_validate({"perceptual": {"vgg_weights": "random"}}))
    pred, target = _pair()
    pred = pred.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, comp = obj(pred, target)
    assert total.dtype == torch.float32 and comp["perceptual"].dtype == torch.float32
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_edge_and_ssim_terms_reuse_project_implementations():
    from skimage.metrics import structural_similarity

    from pipeline.data.intensity import model_to_window
    from pipeline.models.sobel import sobel_edges

    cfg = LossConfig.model_validate(
        {"perceptual": {"weight": 0}, "edge_weight": 2.0, "ssim_weight": 3.0}
    )
    obj = build_objective(cfg)
    pred, target = _pair()
    total, comp = obj(pred, target)
    edge = F.mse_loss(sobel_edges(pred), sobel_edges(target))
    torch.testing.assert_close(comp["edge"], edge)
    # oracle: skimage SSIM (Gaussian 11x11, sigma 1.5) in the soft-tissue window
    pw = model_to_window(pred, "soft_tissue").double().numpy()
    tw = model_to_window(target, "soft_tissue").double().numpy()
    ref = [
        structural_similarity(
            pw[i, 0],
            tw[i, 0],
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(pw.shape[0])
    ]
    assert abs(comp["ssim"].item() - (1 - sum(ref) / len(ref))) < 1e-4
    torch.testing.assert_close(total, comp["mse"] + 2.0 * comp["edge"] + 3.0 * comp["ssim"])
    d = obj.describe()
    assert d["edge_weight"] == 2.0 and d["vgg_weights"] == "none"


def test_edge_and_ssim_gradients_flow():
    cfg = LossConfig.model_validate(
        {"perceptual": {"weight": 0}, "mse_weight": 0, "edge_weight": 1.0, "ssim_weight": 1.0}
    )
    pred, target = _pair()
    pred = pred.requires_grad_()
    total, _ = build_objective(cfg)(pred, target)
    total.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
