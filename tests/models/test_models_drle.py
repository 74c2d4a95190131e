"""DRL-E against the reference description: layers, dilations, receptive field, parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.models.drle import DRLE, DRLE_DILATIONS
from pipeline.models.flops import count_flops, count_parameters


def _convs(m: nn.Module) -> list[nn.Conv2d]:
    return [c for c in m.modules() if isinstance(c, nn.Conv2d)]


def test_layer_count_kernels_and_dilations() -> None:
    convs = _convs(DRLE())
    assert len(convs) == 7
    assert [c.dilation[0] for c in convs] == [1, 2, 3, 4, 3, 2, 1] == list(DRLE_DILATIONS)
    assert [c.kernel_size[0] for c in convs] == [5, 3, 3, 3, 3, 3, 3]
    assert [c.in_channels for c in convs] == [5, 64, 64, 64, 64, 128, 64 + 64 + 5]
    assert [c.out_channels for c in convs] == [64] * 6 + [1]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in DRLE().modules()) == 5


def test_parameter_count_matches_hand_count() -> None:
    c = 64
    conv1 = 5 * 5 * 5 * c + c  # 5 input channels (image + 4 Sobel maps)
    dil = 3 * 3 * c * c + c  # conv2..conv5
    conv6 = 3 * 3 * 2 * c * c + c  # after concat(c5, c2)
    out = 3 * 3 * (2 * c + 5) * 1 + 1  # after concat(c6, c1, edges)
    bn = 5 * 2 * c
    assert count_parameters(DRLE()) == conv1 + 4 * dil + conv6 + out + bn == 231406
    # the plain DRL sees one input channel
    assert count_parameters(DRLE(edge=False)) == 231406 - 4 * 25 * c - 4 * 9


def test_flops_match_hand_count() -> None:
    c, hw = 64, 512 * 512
    macs = (25 * 5 * c + 4 * 9 * c * c + 9 * 2 * c * c + 9 * (2 * c + 5)) * hw
    # the fixed Sobel layer (36 MACs/pixel, a functional conv) is not counted
    assert count_flops(DRLE()) == 2 * macs


def test_receptive_field_is_37_pixels() -> None:
    # radius: Sobel 1 + 5x5 conv 2 + dilations 2+3+4+3+2 + last conv 1 = 18 -> 37 x 37
    torch.manual_seed(0)
    m = DRLE(residual=False, batch_norm=False).double().eval()
    x = torch.zeros(1, 1, 61, 61, dtype=torch.float64, requires_grad=True)
    m(x)[0, 0, 30, 30].backward()
    assert x.grad is not None
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1))
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0))
    assert (rows.min().item(), rows.max().item()) == (30 - 18, 30 + 18)
    assert (cols.min().item(), cols.max().item()) == (30 - 18, 30 + 18)


@pytest.mark.parametrize("hw", [(16, 16), (33, 47), (7, 5), (64, 31)])
def test_output_shape_equals_input_shape(hw: tuple[int, int]) -> None:
    m = DRLE(channels=8, residual=False).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 1, *hw)).shape == (2, 1, *hw)


def test_residual_is_identity_at_init_and_trains() -> None:
    torch.manual_seed(0)
    m = DRLE(channels=8)
    x = torch.rand(2, 1, 24, 24)
    torch.testing.assert_close(m(x), x)
    loss = (m(x) - 0.5).pow(2).mean()
    loss.backward()
    assert m.out.weight.grad is not None and m.out.weight.grad.abs().sum() > 0


def test_sobel_kernels_are_buffers_not_parameters() -> None:
    m = DRLE()
    names = [n for n, _ in m.named_parameters()]
    assert not any("kernels" in n for n in names)
    assert "edges.kernels" in m.state_dict()
    assert any("scale" in n for n, _ in DRLE(trainable_edges=True).named_parameters())
