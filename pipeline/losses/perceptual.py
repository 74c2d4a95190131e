"""VGG16 perceptual (feature) loss for CT images in the model range.

What is compared: ``pred`` and ``target`` ((B, 1, H, W), model range, see
:mod:`pipeline.intensity`) are mapped through a HU window to [0, 1] (one window -> a grey
image seen on R, G and B; three windows -> R, G, B), ImageNet-normalised and passed through a
frozen VGG16 up to the deepest requested layer. Per layer the distance is the **mean** over
batch, channels and positions of ``|f(pred) - f(target)|`` (``l1``) or its square (``mse``);
layer terms are multiplied by their weights and **summed**. The optional style term does the
same with Gram matrices (``F F^T`` per image, divided by ``C*H*W`` when ``gram_normalize``;
the source article does not divide).

Speed and precision: target features are computed without autograd; the network stops at the
deepest tap; optional channels-last memory format; no 224x224 resize unless asked (the source
article's default resize costs ~12x the pixels of a 64x64 patch and blurs the noise the loss is
meant to see). The VGG path runs in fp32 with autocast disabled, even inside a bf16-autocast
training step; ``precision="bf16"`` is an explicit, measured opt-in (docs/perceptual-loss.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ConfigError
from pipeline.intensity import get_window, model_to_window
from pipeline.losses.vgg import VGG16Features, canonical_layer
from pipeline.utils.shapes import check_shape

Distance = Literal["l1", "mse"]
Precision = Literal["fp32", "bf16"]
Formulation = Literal["direct", "delta"]


def feature_distance(a: torch.Tensor, b: torch.Tensor, kind: Distance) -> torch.Tensor:
    """Mean absolute (``l1``) or mean squared (``mse``) difference over all elements."""
    if kind == "l1":
        return F.l1_loss(a, b)
    if kind == "mse":
        return F.mse_loss(a, b)
    raise ConfigError(f"unknown feature distance {kind!r} (expected 'l1' or 'mse')")


def gram_matrix(f: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix ``F F^T``; divided by ``C*H*W`` when ``normalize``."""
    b, c, h, w = f.shape
    act = f.reshape(b, c, h * w)
    g = act @ act.transpose(1, 2)
    return g / (c * h * w) if normalize else g


def _distance_of_difference(d: torch.Tensor, kind: Distance) -> torch.Tensor:
    """:func:`feature_distance` given the difference ``d = f(pred) - f(target)``."""
    return d.abs().mean() if kind == "l1" else d.square().mean()


def _gram_difference(a: torch.Tensor, d: torch.Tensor, normalize: bool) -> torch.Tensor:
    """``gram(a + d) - gram(a)`` as ``A D^T + D A^T + D D^T`` (no cancellation)."""
    b, c, h, w = a.shape
    am, dm = a.reshape(b, c, h * w), d.reshape(b, c, h * w)
    cross = am @ dm.transpose(1, 2)
    g = cross + cross.transpose(1, 2) + dm @ dm.transpose(1, 2)
    return g / (c * h * w) if normalize else g


def windows_to_rgb(x_model: torch.Tensor, windows: Sequence[str]) -> torch.Tensor:
    """(B, 1, H, W) model range -> (B, len(windows), H, W) windowed [0, 1] (clipped)."""
    return torch.cat([model_to_window(x_model, w) for w in windows], dim=1)


class PerceptualLoss(nn.Module):
    """VGG16 feature loss between two (B, 1, H, W) model-range images.

    ``forward(pred, target)`` returns ``(loss, terms)``; ``terms`` maps ``"<layer>"`` (and
    ``"style/<layer>"``) to the unweighted per-layer distances, ``loss`` is the weighted sum
    (style terms multiplied by ``style_weight``).
    """

    def __init__(
        self,
        features: Mapping[str, torch.Tensor],
        *,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
        layer_weights: Sequence[float] | None = None,
        distance: Distance = "mse",
        windows: Sequence[str] = ("soft_tissue",),
        resize: int | None = None,
        style_layers: Sequence[str] = (),
        style_weight: float = 0.0,
        gram_normalize: bool = True,
        precision: Precision = "fp32",
        formulation: Formulation = "direct",
        channels_last: bool = True,
        fold_gray: bool = True,
        weights_description: str = "unspecified",
    ) -> None:
        super().__init__()
        if len(windows) not in (1, 3):
            raise ConfigError(f"perceptual windows: give 1 or 3 windows, found {list(windows)}")
        for w in windows:
            get_window(w)  # validates the name early
        self.layers = tuple(canonical_layer(n) for n in layers)
        self.style_layers = tuple(canonical_layer(n) for n in style_layers)
        if layer_weights is None:
            layer_weights = [1.0] * len(self.layers)
        if len(layer_weights) != len(self.layers):
            raise ConfigError(
                f"perceptual layer_weights: {len(layer_weights)} weights for "
                f"{len(self.layers)} layers {list(self.layers)}"
            )
        if distance not in ("l1", "mse"):
            raise ConfigError(f"perceptual distance {distance!r}: expected 'l1' or 'mse'")
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"perceptual precision {precision!r}: expected 'fp32' or 'bf16'")
        if formulation not in ("direct", "delta"):
            raise ConfigError(
                f"perceptual formulation {formulation!r}: expected 'direct' or 'delta'"
            )
        if resize is not None and resize < 16:
            raise ConfigError(f"perceptual resize: expected None or >= 16 pixels, found {resize}")
        self.layer_weights = tuple(float(v) for v in layer_weights)
        self.distance: Distance = distance
        self.windows = tuple(windows)
        self.resize = resize
        self.style_weight = float(style_weight)
        self.gram_normalize = gram_normalize
        self.precision: Precision = precision
        self.formulation: Formulation = formulation
        self.channels_last = channels_last
        self.weights_description = weights_description
        taps = list(dict.fromkeys(self.layers + self.style_layers))
        self._tap_pos = {name: i for i, name in enumerate(taps)}
        self.vgg = VGG16Features(features, taps, fold_gray=fold_gray)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = windows_to_rgb(x.float(), self.windows)
        if self.resize is not None:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.precision == "bf16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return [f.float() for f in self.vgg(x)]
        return self.vgg(x)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        check_shape("perceptual pred", pred, ("B", 1, "H", "W"))
        check_shape("perceptual target", target, tuple(pred.shape))
        if self.formulation == "delta":
            return self._forward_delta(pred, target)
        with torch.autocast(pred.device.type, enabled=False):
            fp = self._features(self._prepare(pred))
            with torch.no_grad():
                ft = self._features(self._prepare(target.detach()))
            terms: dict[str, torch.Tensor] = {}
            total = pred.new_zeros((), dtype=torch.float32)
            for name, weight in zip(self.layers, self.layer_weights, strict=True):
                i = self._tap_pos[name]
                terms[name] = feature_distance(fp[i], ft[i], self.distance)
                total = total + weight * terms[name]
            for name in self.style_layers:
                i = self._tap_pos[name]
                gp = gram_matrix(fp[i], self.gram_normalize)
                gt = gram_matrix(ft[i], self.gram_normalize)
                terms[f"style/{name}"] = F.l1_loss(gp, gt)
                total = total + self.style_weight * terms[f"style/{name}"]
        return total, terms

    def _forward_delta(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        with torch.autocast(pred.device.type, enabled=False):
            with torch.no_grad():
                xt = self._prepare(target.detach())
            taps = self.vgg.forward_delta(xt, self._prepare(pred), dtype, self.channels_last)
            terms: dict[str, torch.Tensor] = {}
            total = pred.new_zeros((), dtype=torch.float32)
            for name, weight in zip(self.layers, self.layer_weights, strict=True):
                _, d = taps[self._tap_pos[name]]
                terms[name] = _distance_of_difference(d.float(), self.distance)
                total = total + weight * terms[name]
            for name in self.style_layers:
                a, d = taps[self._tap_pos[name]]
                g = _gram_difference(a.float(), d.float(), self.gram_normalize)
                terms[f"style/{name}"] = g.abs().mean()
                total = total + self.style_weight * terms[f"style/{name}"]
        return total, terms

    def describe(self) -> dict[str, object]:
        """Plain-data summary for checkpoints and reports."""
        return {
            "vgg_weights": self.weights_description,
            "layers": list(self.layers),
            "layer_weights": list(self.layer_weights),
            "distance": self.distance,
            "windows": list(self.windows),
            "resize": self.resize,
            "style_layers": list(self.style_layers),
            "style_weight": self.style_weight,
            "precision": self.precision,
            "formulation": self.formulation,
        }
