"""VGG16 feature extractor: layer names, taps against torchvision's own VGG16, exact 1->3 fold."""

from __future__ import annotations

import pytest
import torch
from article_baseline import IMAGENET_MEAN, IMAGENET_STD, torchvision_features

from pipeline.errors import ConfigError
from pipeline.losses.vgg import VGG16_LAYER_NAMES, VGG16Features, canonical_layer, layer_index
from pipeline.losses.weights import random_features_state


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_features_state(seed=3)


def test_layer_indices_match_domain_table():
    # DOMAIN.md section 9, torchvision vgg16().features indices
    expected = {"conv1_1": 0, "relu1_2": 3, "conv2_1": 5, "relu2_2": 8, "pool2": 9}
    expected |= {"conv3_3": 14, "relu3_3": 15, "pool3": 16, "conv4_3": 21, "relu4_3": 22}
    for name, idx in expected.items():
        assert layer_index(name) == idx
    assert len(VGG16_LAYER_NAMES) == 31 and VGG16_LAYER_NAMES[-1] == "pool5"


def test_keras_aliases_are_post_relu():
    # Keras' block{b}_conv{c} includes the ReLU activation
    assert canonical_layer("block1_conv2") == "relu1_2"
    assert canonical_layer("block2_conv2") == "relu2_2"
    assert canonical_layer("block3_conv3") == "relu3_3"
    assert canonical_layer("block4_pool") == "pool4"


def test_unknown_layer_suggests():
    with pytest.raises(ConfigError, match="did you mean 'relu3_3'"):
        canonical_layer("relu3_33")


def _reference_taps(state, x3, indices):
    """Oracle: torchvision's features Sequential on explicitly normalised 3-channel input."""
    feats = torchvision_features(state).eval()
    # torchvision's ReLUs are in-place: clone after each layer to keep pre-ReLU taps intact
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    y = (x3 - mean) / std
    out = {}
    with torch.no_grad():
        for i in range(max(indices) + 1):
            y = feats[i](y.clone())
            if i in indices:
                out[i] = y.clone()
    return [out[i] for i in indices]


@pytest.mark.parametrize("fold", [True, False])
def test_taps_equal_torchvision_including_pre_relu(state, fold):
    torch.manual_seed(0)
    x = torch.rand(2, 1, 20, 24)
    layers = ["conv1_2", "relu2_2", "conv3_3", "relu3_3"]
    vgg = VGG16Features(state, layers, fold_gray=fold)
    with torch.no_grad():
        ours = vgg(x)
    ref = _reference_taps(state, x.repeat(1, 3, 1, 1), [layer_index(n) for n in layers])
    for name, a, b in zip(layers, ours, ref, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
    # pre-ReLU tap has negative values, its ReLU twin none
    assert ours[2].min() < 0 and ours[3].min() >= 0


def test_fold_is_exact_on_the_border(state):
    # a constant-bias fold would be wrong on the 1-pixel border; ours must match everywhere
    torch.manual_seed(1)
    x = torch.rand(1, 1, 9, 11)
    folded = VGG16Features(state, ["conv1_1"], fold_gray=True)
    plain = VGG16Features(state, ["conv1_1"], fold_gray=False)
    a, b = folded(x)[0], plain(x)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=2e-6)
    # the naive fold (normalisation as one constant bias) differs on the border only
    w0 = state["0.weight"]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    w = (w0 / std).sum(1, keepdim=True)
    bias = state["0.bias"] - (w0 * mean / std).sum((1, 2, 3))
    naive = torch.nn.functional.conv2d(x, w, bias, padding=1)
    torch.testing.assert_close(naive[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1], rtol=0, atol=2e-6)
    assert (naive[..., 0, :] - b[..., 0, :]).abs().max() > 1e-2


def test_three_channel_input(state):
    x = torch.rand(1, 3, 16, 16)
    vgg = VGG16Features(state, ["relu1_2"])
    ref = _reference_taps(state, x, [3])[0]
    torch.testing.assert_close(vgg(x)[0], ref, rtol=1e-5, atol=1e-5)


def test_stops_at_deepest_layer_and_is_frozen(state):
    vgg = VGG16Features(state, ["relu2_2", "relu1_2"])
    assert vgg.depth == 9
    names = {n for n, _ in vgg.named_buffers()}
    assert "w7" in names and "w10" not in names  # conv3_1 (index 10) is never built
    assert list(vgg.parameters()) == []
    vgg.train()
    assert not vgg.training
    out = vgg(torch.rand(1, 1, 16, 16))
    assert [o.shape[1] for o in out] == [128, 64]  # order as requested


def test_bad_input_shape(state):
    vgg = VGG16Features(state, ["relu1_2"])
    with pytest.raises(ValueError, match=r"expected \(B, 1\|3, H, W\)"):  # a bug: code passes it
        vgg(torch.rand(1, 2, 8, 8))
