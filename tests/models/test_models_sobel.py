"""Sobel edge layer: analytic oracles, gradcheck, module == functional, buffers."""

from __future__ import annotations

import pytest
import torch

from pipeline.errors import LdctError
from pipeline.models.sobel import SobelEdges, sobel_edges, sobel_kernels, sobel_magnitude


def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    y, x = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    return x, y


@pytest.mark.parametrize(("a", "b"), [(2.0, 3.0), (-1.5, 0.0), (0.0, 0.25)])
def test_ramp_gives_constant_analytic_gradient(a: float, b: float) -> None:
    x, y = _grid(9, 11)
    img = (a * x + b * y)[None, None]
    e = sobel_edges(img)[0, :, 1:-1, 1:-1]  # interior: no padding involved
    expected = [8 * a, 8 * b, 6 * (a + b), 6 * (a - b)]
    for d, val in enumerate(expected):
        torch.testing.assert_close(e[d], torch.full_like(e[d], val))


def test_vertical_step_response_and_reflect_border() -> None:
    x, _ = _grid(6, 8)
    img = (x >= 4).double()[None, None]  # step of height 1 between columns 3 and 4
    e = sobel_edges(img)[0]
    # columns 3 and 4 see the step through the +-1 column taps: 1 + 2 + 1 = 4
    assert torch.all(e[0, :, 3] == 4) and torch.all(e[0, :, 4] == 4)
    assert torch.all(e[0, :, [0, 1, 2, 5, 6, 7]] == 0)
    assert torch.all(e[1] == 0)  # no vertical change anywhere (reflect keeps rows equal)
    # diagonals: 2 + 1 (+x+y) and 2 + 1 (+x-y) on interior rows
    assert torch.all(e[2, 1:-1, 3] == 3) and torch.all(e[3, 1:-1, 3] == 3)


def test_constant_image_has_zero_edges_with_reflect_padding() -> None:
    e = sobel_edges(torch.full((2, 3, 5, 7), 0.7))
    assert e.shape == (2, 12, 5, 7)
    assert e.abs().max() < 1e-6  # zero padding would light up the border (~0.7 * 4)


def test_gradcheck_float64() -> None:
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(4, dtype=torch.float64, requires_grad=True)
    k = sobel_kernels(torch.float64)
    assert torch.autograd.gradcheck(lambda t, s: sobel_edges(t, k, s), (x, scale))
    assert torch.autograd.gradcheck(sobel_magnitude, (x,))


def test_magnitude_gradient_finite_on_flat_image() -> None:
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)
    sobel_magnitude(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_module_equals_functional_and_buffers() -> None:
    x = torch.randn(2, 1, 13, 10)
    m = SobelEdges()
    torch.testing.assert_close(m(x), sobel_edges(x))
    assert list(m.parameters()) == []
    assert "kernels" in m.state_dict()
    mc = SobelEdges(concat_input=True)
    torch.testing.assert_close(mc(x), torch.cat([x, sobel_edges(x)], 1))
    assert mc.out_channels(1) == 5


def test_trainable_variant_scales_directions_and_learns_only_scale() -> None:
    m = SobelEdges(trainable=True)
    assert [n for n, _ in m.named_parameters()] == ["scale"]
    with torch.no_grad():
        m.scale.copy_(torch.tensor([1.0, 2.0, 0.0, -1.0]))  # type: ignore[union-attr]
    x = torch.randn(1, 1, 8, 8)
    ref = sobel_edges(x) * torch.tensor([1.0, 2.0, 0.0, -1.0]).view(1, 4, 1, 1)
    torch.testing.assert_close(m(x), ref)
    m(x).sum().backward()
    assert m.kernels.grad is None


def test_bad_input_raises() -> None:
    with pytest.raises(LdctError, match="H, W >= 2"):
        sobel_edges(torch.zeros(1, 1, 1, 5))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):  # a bug, not user input
        sobel_edges(torch.zeros(5, 5))
