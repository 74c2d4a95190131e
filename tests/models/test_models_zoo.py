"""MONAI U-Net variants, RED-CNN, FLOP counter oracle, registry listing and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.errors import LdctError
from pipeline.models.checkpoint import save_checkpoint
from pipeline.models.flops import count_flops, count_parameters
from pipeline.models.monai_nets import EdgeUNet, pad_to_multiple
from pipeline.models.redcnn import REDCNN
from pipeline.models.registry import DEFAULT_MODEL, build_model, list_models, model_names

SMALL_UNET = {"features": [4, 4, 8, 8, 8, 4]}


def test_flop_counter_against_hand_count() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),  # 2 * 3 * 9 * H*W
        nn.ReLU(),
        nn.Conv2d(3, 2, 1, stride=2),  # 2 * 2 * 3 * (H/2 * W/2)
        nn.ConvTranspose2d(2, 5, 2, stride=2),  # 2 * (H/2*W/2*2) * 5 * 4
        nn.Conv2d(5, 5, 3, padding=1, groups=5),  # depthwise: 2 * 5 * 9 * H*W
    )
    h, w = 8, 6
    expected = 2 * (3 * 9 * h * w + 2 * 3 * (h // 2) * (w // 2))
    expected += 2 * (2 * (h // 2) * (w // 2)) * 5 * 4 + 2 * 5 * 9 * h * w
    assert count_flops(net, (1, 1, h, w)) == expected
    assert count_parameters(net) == (3 * 9 + 3) + (2 * 3 + 2) + (2 * 5 * 4 + 5) + (5 * 9 + 5)


@pytest.mark.parametrize("upsample", ["nontrainable", "pixelshuffle", "deconv"])
@pytest.mark.parametrize("hw", [(16, 16), (33, 47), (7, 5)])
def test_unet_any_size_and_identity_at_init(upsample: str, hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    m = EdgeUNet(**SMALL_UNET, upsample=upsample).eval()  # type: ignore[arg-type]
    x = torch.rand(2, 1, *hw)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)  # residual with zero-init final conv


def test_unet_uses_no_transposed_conv_unless_deconv() -> None:
    def n_deconv(m: nn.Module) -> int:
        return sum(isinstance(c, nn.ConvTranspose2d) for c in m.modules())

    assert n_deconv(build_model("unet")) == 0
    assert n_deconv(build_model("unet-deconv")) == 4
    info = {i.name: i for i in list_models()}
    assert info["unet-deconv"].transposed_conv and not info["unet"].transposed_conv


def test_pad_to_multiple_crops_back_exactly() -> None:
    x = torch.rand(1, 2, 18, 35)
    xp, (h, w) = pad_to_multiple(x, 16)
    assert xp.shape[-2:] == (32, 48) and (h, w) == (18, 35)
    torch.testing.assert_close(xp[..., :h, :w], x)


def test_unet_non_residual_output_differs_from_input() -> None:
    m = EdgeUNet(**SMALL_UNET, residual=False).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        assert not torch.allclose(m(torch.rand(1, 1, 20, 20)), torch.rand(1, 1, 20, 20))


def test_redcnn_shape_params_and_min_size() -> None:
    m = REDCNN(channels=8).eval()
    with torch.no_grad():
        assert m(torch.rand(1, 1, 23, 30)).shape == (1, 1, 23, 30)
    # reference width: 5x5 convs 1->96, 4x 96->96; deconvs 4x 96->96, 96->1
    c, k = 96, 25
    expected = (k * c + c) + 4 * (k * c * c + c) + 4 * (k * c * c + c) + (k * c + 1)
    assert count_parameters(REDCNN()) == expected
    with pytest.raises(LdctError, match="H, W >= 21"):
        m(torch.rand(1, 1, 20, 40))


def test_every_registered_model_builds_and_lists() -> None:
    infos = list_models()
    assert [i.name for i in infos] == model_names()
    assert sum(i.default for i in infos) == 1
    assert DEFAULT_MODEL in model_names()
    by = {i.name: i for i in infos}
    assert by["drle"].n_params == 231406
    assert 118 < by["drle"].gflops_512 < 122  # issue text: ~118 GFLOP per 512x512 slice
    assert by["drle-s"].gflops_512 < by["drle"].gflops_512 / 3.5


def test_cli_models_list_and_info(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("models")
    assert r.exit_code == 0 and "drle" in r.stdout and "[training default]" in r.stdout
    (line,) = [ln for ln in r.stdout.splitlines() if "[bundled" in ln]
    from pipeline.models.bundled import bundled_model_path
    from pipeline.models.checkpoint import load_checkpoint

    bundled_cfg = load_checkpoint(bundled_model_path()).model_cfg
    assert line.split()[0] == bundled_cfg["name"]
    # parameters the bundled checkpoint sets beyond the entry's preset are named on its line
    assert all(f"{k}={v}" in line for k, v in bundled_cfg["params"].items())
    r = run_cli("models", "list", "--json")
    assert r.exit_code == 0
    assert {d["name"] for d in json.loads(r.stdout)} == set(model_names())
    ck = save_checkpoint(
        tmp_path / "m.pt",
        build_model("drle", channels=4),
        {"name": "drle", "params": {"channels": 4}},
        {"losses": {"mse": 0.3, "perceptual": 0.7}},
    )
    r = run_cli("models", "info", str(ck), "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["model"] == "drle" and data["params"] == {"channels": 4}
    assert data["extra"]["losses"]["perceptual"] == 0.7
    r = run_cli("models", "info", str(tmp_path / "missing.pt"))
    assert r.exit_code == 4 and "not found" in r.stderr
