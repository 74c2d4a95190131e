"""Perceptual loss: equal to the source article's class, gradients, freezing, precision."""

from __future__ import annotations

import pytest
import torch
from article_baseline import ArticleVGGPerceptualLoss

from pipeline.errors import ConfigError
from pipeline.intensity import hu_to_model, model_to_window
from pipeline.losses.perceptual import PerceptualLoss, gram_matrix
from pipeline.losses.weights import random_features_state

ARTICLE_BLOCKS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_features_state(seed=7)


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 24, 28, generator=g)
    pred = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return pred, target


@pytest.mark.parametrize(
    ("blocks", "fold", "channels_last"),
    [((0, 1, 2, 3), True, True), ((0, 1, 2), False, False), ((1, 3), True, False)],
)
def test_equals_article_class_l1_no_resize(state, pair, blocks, fold, channels_last):
    pred, target = pair
    article = ArticleVGGPerceptualLoss(features_state=state, resize=False)
    ref = article(pred, target, feature_layers=blocks)
    # window "model" is the identity on model-range inputs in [0, 1]
    ours = PerceptualLoss(
        state,
        layers=[ARTICLE_BLOCKS[i] for i in blocks],
        distance="l1",
        windows=["model"],
        fold_gray=fold,
        channels_last=channels_last,
    )
    val, terms = ours(pred, target)
    assert abs(val.item() - ref.item()) <= 1e-5 * max(1.0, abs(ref.item()))
    assert set(terms) == {ARTICLE_BLOCKS[i] for i in blocks}


def test_equals_article_style_term(state, pair):
    pred, target = pair
    article = ArticleVGGPerceptualLoss(features_state=state, resize=False)
    ref = article(pred, target, feature_layers=(0,), style_layers=(1,))
    ours = PerceptualLoss(
        state,
        layers=["relu1_2"],
        distance="l1",
        windows=["model"],
        style_layers=["relu2_2"],
        style_weight=1.0,
        gram_normalize=False,
    )
    val, terms = ours(pred, target)
    torch.testing.assert_close(val, ref, rtol=1e-5, atol=1e-5)
    assert "style/relu2_2" in terms


def test_equals_article_with_its_224_resize(state):
    g = torch.Generator().manual_seed(1)
    target = torch.rand(1, 1, 16, 16, generator=g)
    pred = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    ref = ArticleVGGPerceptualLoss(features_state=state, resize=True)(pred, target, (0,))
    ours = PerceptualLoss(state, layers=["relu1_2"], distance="l1", windows=["model"], resize=224)
    torch.testing.assert_close(ours(pred, target)[0], ref, rtol=1e-5, atol=1e-5)


def test_gram_matrix_oracle():
    f = torch.arange(12, dtype=torch.float32).reshape(1, 2, 2, 3)
    a = f.reshape(2, 6)
    torch.testing.assert_close(gram_matrix(f, normalize=False)[0], a @ a.T)
    torch.testing.assert_close(gram_matrix(f)[0], a @ a.T / 12)


def test_window_is_applied(state):
    # two images that differ only outside the soft-tissue window give zero loss there
    hu = torch.full((1, 1, 16, 16), 40.0)
    other = hu.clone()
    other[..., 4:8, 4:8] = 1500.0
    other_clip = other.clone()
    other_clip[..., 4:8, 4:8] = 240.0  # what the window clips 1500 HU to
    loss = PerceptualLoss(state, windows=["soft_tissue"])
    a = loss(hu_to_model(other), hu_to_model(hu))[0]
    b = loss(hu_to_model(other_clip), hu_to_model(hu))[0]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=0)
    assert a > 0
    # three windows as R/G/B: each channel is its own window
    rgb = PerceptualLoss(state, windows=["lung", "soft_tissue", "bone"])
    x = rgb._prepare(hu_to_model(other))
    assert x.shape[1] == 3
    torch.testing.assert_close(x[:, 2:3], model_to_window(hu_to_model(other), "bone"))


def test_gradients_reach_input_only_and_vgg_never_changes(state, pair):
    pred, target = pair
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():  # near-identity: a random init can map every pixel outside the window
        torch.nn.init.dirac_(model.weight)  # (clamped: zero gradient), so this must not depend
        model.weight.mul_(0.9)  # on the global RNG state left by earlier tests
        model.bias.fill_(0.05)
    loss_fn = PerceptualLoss(state, windows=["model"])
    assert list(loss_fn.parameters()) == []
    before = {k: v.clone() for k, v in loss_fn.vgg.named_buffers()}
    opt = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), lr=0.1)
    t = target.clone().requires_grad_(True)
    for _ in range(2):
        opt.zero_grad()
        loss, _ = loss_fn(model(pred), t)
        loss.backward()
        opt.step()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0
    assert t.grad is None  # target features are computed without autograd
    for k, v in loss_fn.vgg.named_buffers():
        assert not v.requires_grad
        assert torch.equal(v, before[k]), k


def test_fp32_inside_bf16_autocast(state, pair):
    pred, target = pair
    loss_fn = PerceptualLoss(state)
    ref = loss_fn(pred, target)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        val = loss_fn(pred.bfloat16(), target.bfloat16())[0]
    assert val.dtype == torch.float32
    # only the bf16 rounding of the inputs differs, not the VGG arithmetic
    ref_rounded = loss_fn(pred.bfloat16().float(), target.bfloat16().float())[0]
    torch.testing.assert_close(val, ref_rounded, rtol=1e-6, atol=0)
    assert ref > 0


def test_bf16_variant_runs_and_is_close_at_high_noise(state, pair):
    pred, target = pair
    fp32 = PerceptualLoss(state)(pred, target)[0]
    bf16 = PerceptualLoss(state, precision="bf16")(pred, target)[0]
    assert bf16.dtype == torch.float32
    assert abs(bf16.item() / fp32.item() - 1) < 0.1


def test_identical_images_give_zero(state, pair):
    _, target = pair
    val, terms = PerceptualLoss(state, distance="l1")(target, target)
    assert val.item() == 0.0 and all(v.item() == 0.0 for v in terms.values())


def test_errors(state):
    with pytest.raises(ConfigError, match="1 or 3 windows"):
        PerceptualLoss(state, windows=["lung", "bone"])
    with pytest.raises(ConfigError, match="layer_weights"):
        PerceptualLoss(state, layer_weights=[1.0])
    with pytest.raises(ConfigError, match="unknown window"):
        PerceptualLoss(state, windows=["sofft"])
    with pytest.raises(ValueError, match="expected shape"):
        PerceptualLoss(state)(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize(
    ("distance", "windows", "fold", "channels_last"),
    [
        ("mse", ["model"], True, True),
        ("l1", ["model"], False, False),
        ("mse", ["lung", "soft_tissue", "bone"], True, False),
    ],
)
def test_delta_formulation_equals_direct_in_fp32(state, distance, windows, fold, channels_last):
    g = torch.Generator().manual_seed(2)
    target = 0.2 + 0.2 * torch.rand(2, 1, 24, 28, generator=g)
    pred = target + 0.01 * torch.randn(target.shape, generator=g)
    kw = {
        "layers": ["conv1_2", "relu2_2", "relu3_1"],
        "distance": distance,
        "windows": windows,
        "fold_gray": fold,
        "channels_last": channels_last,
        "style_layers": ["relu2_1"],
        "style_weight": 0.5,
    }
    results = []
    for formulation in ("direct", "delta"):
        x = pred.clone().requires_grad_(True)
        loss, terms = PerceptualLoss(state, formulation=formulation, **kw)(x, target)
        loss.backward()
        results.append((loss, terms, x.grad))
    (l0, t0, g0), (l1, t1, g1) = results
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-9)
    assert t0.keys() == t1.keys()
    for k in t0:
        torch.testing.assert_close(t1[k], t0[k], rtol=1e-4, atol=1e-9, msg=k)
    # (L1 gradients are sign(d): a few |d| ~ 1e-7 may flip between the two roundings)
    rel = ((g1 - g0).norm() / g0.norm()).item()
    assert (
        rel < 1e-3
        and torch.nn.functional.cosine_similarity(g1.flatten(), g0.flatten(), dim=0) > 0.99999
    )


def test_bf16_delta_stays_accurate_where_bf16_direct_fails(state):
    # 0.1 % noise: the feature differences are below bf16 rounding of the features themselves
    g = torch.Generator().manual_seed(4)
    target = 0.3 + 0.1 * torch.rand(2, 1, 32, 32, generator=g)
    pred = target + 0.001 * torch.randn(target.shape, generator=g)

    def run(precision: str, formulation: str) -> tuple[float, torch.Tensor]:
        x = pred.clone().requires_grad_(True)
        loss_fn = PerceptualLoss(
            state, windows=["model"], precision=precision, formulation=formulation
        )
        loss, _ = loss_fn(x, target)
        loss.backward()
        assert x.grad is not None
        return loss.item(), x.grad.flatten()

    ref_l, ref_g = run("fp32", "direct")
    delta_l, delta_g = run("bf16", "delta")
    direct_l, _ = run("bf16", "direct")
    cos = torch.nn.functional.cosine_similarity
    assert abs(delta_l / ref_l - 1) < 0.01 and cos(delta_g, ref_g, dim=0) > 0.99
    assert abs(direct_l / ref_l - 1) > 0.1  # the failure the delta formulation avoids


@pytest.mark.slow
def test_full_torchvision_state_dict_by_path_equals_article(tmp_path):
    """The article's way: a whole torchvision VGG16 state dict file (528 MB) loaded by path."""
    import torchvision

    from pipeline.losses.objective import LossConfig, build_objective

    torch.manual_seed(0)
    path = tmp_path / "vgg16.pth"
    torch.save(torchvision.models.vgg16().state_dict(), path)
    article = ArticleVGGPerceptualLoss(path, resize=False)
    cfg = LossConfig.model_validate(
        {
            "mse_weight": 0.0,
            "perceptual": {
                "weight": 1.0,
                "vgg_weights": "file",
                "vgg_weights_path": str(path),
                "distance": "l1",
                "windows": ["model"],
                "layers": list(ARTICLE_BLOCKS),
            },
        }
    )
    ours = build_objective(cfg)
    g = torch.Generator().manual_seed(5)
    target = torch.rand(2, 1, 32, 32, generator=g)
    pred = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    torch.testing.assert_close(ours(pred, target)[0], article(pred, target), rtol=1e-5, atol=1e-6)
