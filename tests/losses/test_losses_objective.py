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


def test_edge_term_reuses_the_sobel_layer():
    from pipeline.models.sobel import sobel_edges

    cfg = LossConfig.model_validate({"perceptual": {"weight": 0}, "edge_weight": 2.0})
    obj = build_objective(cfg)
    pred, target = _pair()
    pred = pred.requires_grad_()
    total, comp = obj(pred, target)
    # oracle: the edge maps of an affine ramp are known (8a, 8b, 6(a+b), 6(a-b)), so check
    # against sobel_edges and, for the ramp difference, against the analytic value
    edge = F.mse_loss(sobel_edges(pred), sobel_edges(target))
    torch.testing.assert_close(comp["edge"], edge)
    torch.testing.assert_close(total, comp["mse"] + 2.0 * comp["edge"])
    total.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 1, 16, 16) * 0.01
    _, c = obj(ramp.clone(), torch.zeros_like(ramp))
    # difference is a ramp with slope a = 0.01 along x (b = 0): maps 0.08, 0, 0.06, 0.06
    # inside; reflect padding makes the first/last columns 0 for the x-derivatives
    inner = (0.08**2 + 0.06**2 + 0.06**2) / 4
    expected = inner * 14 / 16
    assert abs(c["edge"].item() - expected) < 1e-6
    assert obj.describe()["edge_weight"] == 2.0
