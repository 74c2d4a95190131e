"""Frozen VGG16 feature extractor with named taps (``relu1_2``, ``conv3_3``, ``block2_conv2``...).

Layer names follow torchvision's ``vgg16().features`` indices (DOMAIN.md section 9):
``conv{b}_{c}`` is a convolution output (pre-ReLU, the ESRGAN tap), ``relu{b}_{c}`` the same after
its ReLU, ``pool{b}`` a max-pool. Keras names are accepted as aliases: Keras' ``block{b}_conv{c}``
layer includes its ReLU activation, so it is ``relu{b}_{c}`` here; ``block{b}_pool`` is
``pool{b}``.

The network is not an ``nn.Module`` tree with parameters: the conv tensors are non-persistent
buffers, so no optimizer can ever update them, ``parameters()`` is empty and the objective's
state dict stays small. Only the layers up to the deepest tap are kept and computed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import Self

from pipeline.errors import ConfigError

#: ImageNet statistics torchvision's VGG16 was trained with (RGB).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_BLOCKS = (2, 2, 3, 3, 3)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, n_conv in enumerate(_BLOCKS, start=1):
        for c in range(1, n_conv + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return tuple(names)


#: Name of each entry of torchvision's ``vgg16().features`` (index = position).
VGG16_LAYER_NAMES: tuple[str, ...] = _layer_names()
_INDEX = {name: i for i, name in enumerate(VGG16_LAYER_NAMES)}


def canonical_layer(name: str) -> str:
    """Resolve a layer name or Keras alias to the canonical torchvision-index name."""
    key = name.strip().lower()
    if key in _INDEX:
        return key
    if key.startswith("block") and "_" in key:
        block, rest = key[5:].split("_", 1)
        if rest.startswith("conv"):
            key = f"relu{block}_{rest[4:]}"
        elif rest == "pool":
            key = f"pool{block}"
        if key in _INDEX:
            return key
    close = difflib.get_close_matches(key, VGG16_LAYER_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"unknown VGG16 layer {name!r}{hint} (conv1_1 .. relu5_3, pool1 .. pool5, "
        "or Keras block1_conv1 .. block5_pool)"
    )


def layer_index(name: str) -> int:
    """torchvision ``features`` index of a layer name (``relu1_2`` -> 3, ``conv3_3`` -> 14)."""
    return _INDEX[canonical_layer(name)]


class VGG16Features(nn.Module):
    """Taps of a frozen VGG16 for images in [0, 1]; ImageNet normalisation applied inside.

    ``forward(x)`` takes (B, 1, H, W) (grey, treated as the same image on R, G and B) or
    (B, 3, H, W) (e.g. three HU windows as R/G/B) in [0, 1] and returns the requested taps in the
    order given. With one channel and ``fold_gray`` the 1->3 repeat is folded into conv1_1
    exactly: ``sum_c W_c * (x - m_c)/s_c = (sum_c W_c/s_c) * x - (sum_c W_c m_c/s_c) * 1_valid``,
    where the second term is a convolution of an all-ones image *with zero padding* (cached per
    size), so the 1-pixel border is right. A constant bias instead would be wrong on the border.
    """

    mean: torch.Tensor
    std: torch.Tensor
    w0_gray: torch.Tensor
    w0_offset: torch.Tensor

    def __init__(
        self,
        features: Mapping[str, torch.Tensor],
        layers: Sequence[str],
        *,
        fold_gray: bool = True,
    ) -> None:
        super().__init__()
        if not layers:
            raise ConfigError("VGG16Features: at least one layer is required")
        self.layers: tuple[str, ...] = tuple(canonical_layer(n) for n in layers)
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"VGG16Features: duplicate layers in {list(layers)}")
        self.tap_index = tuple(_INDEX[n] for n in self.layers)
        self.depth = max(self.tap_index) + 1  # number of features entries computed
        self.fold_gray = fold_gray
        self.conv_indices = tuple(
            i for i in range(self.depth) if VGG16_LAYER_NAMES[i].startswith("conv")
        )
        for i in self.conv_indices:
            self.register_buffer(f"w{i}", features[f"{i}.weight"].detach().float().clone(), False)
            self.register_buffer(f"b{i}", features[f"{i}.bias"].detach().float().clone(), False)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, False)
        self.register_buffer("std", std, False)
        w0, s, m = features["0.weight"].detach().double(), std.double(), mean.double()
        self.register_buffer("w0_gray", (w0 / s).sum(1, keepdim=True).float(), False)
        self.register_buffer("w0_offset", (w0 * m / s).sum(1, keepdim=True).float(), False)
        self._offset_cache: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}
        self._cast_cache: dict[tuple[str, torch.dtype, bool], torch.Tensor] = {}
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        """Always stays in eval mode (a frozen network must not switch behaviour)."""
        return super().train(False)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Self:
        self._offset_cache = {}  # device/dtype moves invalidate cached border maps
        self._cast_cache = {}
        return super()._apply(fn, recurse)

    def _offset_map(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        key = (h, w, like.device, like.dtype)
        off = self._offset_cache.get(key)
        if off is None:
            ones = torch.ones(1, 1, h, w, device=like.device, dtype=like.dtype)
            with torch.no_grad():
                off = F.conv2d(ones, self.w0_offset.to(like.dtype), padding=1)
            self._offset_cache[key] = off
        return off

    def _conv(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        w, b = getattr(self, f"w{i}"), getattr(self, f"b{i}")
        assert isinstance(w, torch.Tensor) and isinstance(b, torch.Tensor)
        return w, b

    def _cast(self, name: str, dtype: torch.dtype, channels_last: bool = False) -> torch.Tensor:
        """Buffer ``name`` in ``dtype`` (and channels-last for 4-D), cached per variant."""
        t = getattr(self, name)
        assert isinstance(t, torch.Tensor)
        cl = channels_last and t.ndim == 4
        if t.dtype == dtype and not cl:
            return t
        key = (name, dtype, cl)
        if key not in self._cast_cache:
            fmt = torch.channels_last if cl else torch.contiguous_format
            self._cast_cache[key] = t.to(dtype).contiguous(memory_format=fmt)
        return self._cast_cache[key]

    def _first_conv(self, x: torch.Tensor) -> torch.Tensor:
        w0, b0 = self._conv(0)
        if x.shape[1] == 1 and self.fold_gray:
            w = self.w0_gray.to(x.dtype)
            y = F.conv2d(x, w, b0.to(x.dtype), padding=1)
            return y - self._offset_map(x.shape[-2], x.shape[-1], y)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return F.conv2d(x, w0.to(x.dtype), b0.to(x.dtype), padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"VGG16Features: expected (B, 1|3, H, W) images, found {tuple(x.shape)}"
            )
        taps: dict[int, torch.Tensor] = {}
        wanted = set(self.tap_index)
        for i in range(self.depth):
            kind = VGG16_LAYER_NAMES[i][:4]
            if kind == "conv":
                if i == 0:
                    x = self._first_conv(x)
                else:
                    w, b = self._conv(i)
                    x = F.conv2d(x, w.to(x.dtype), b.to(x.dtype), padding=1)
            elif kind == "relu":
                # in place only when the conv output is not itself a tap
                x = F.relu(x) if (i - 1) in wanted else F.relu_(x)
            else:
                x = F.max_pool2d(x, 2, 2)
            if i in wanted:
                taps[i] = x
        return [taps[i] for i in self.tap_index]

    def forward_delta(
        self,
        target: torch.Tensor,
        pred: torch.Tensor,
        conv_dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Taps as ``(f(target), f(pred) - f(target))`` pairs, the difference propagated directly.

        Mathematically the same as running both images, but the convolutions act on the
        *difference* (they are linear: ``conv(a + d) - conv(a) = conv_nobias(d)``), so their
        rounding error is relative to the small difference, not to the large features. ReLU:
        ``relu(a + d) - relu(a)`` is ``d``, ``a + d`` or ``-a`` by the signs of ``a`` and
        ``a + d`` (each small where it is chosen, and a rounded sum keeps its sign). Max-pool:
        the prediction's window maximum is found on ``a + d`` in fp32, and the difference is
        ``d[k] + (a[k] - max(a))`` at that index ``k`` (exact where both pick the same pixel).
        So with ``conv_dtype`` bfloat16 (fast on AMX/AVX512-BF16 CPUs and GPUs) the loss keeps
        its fp32 meaning even when ``pred`` is within 0.1 % of ``target``. The target path runs
        without autograd; gradients reach ``pred`` through ``d`` only.
        """
        if target.shape != pred.shape or target.ndim != 4 or target.shape[1] not in (1, 3):
            raise ValueError(
                "VGG16Features.forward_delta: expected two (B, 1|3, H, W) images of one shape, "
                f"found {tuple(target.shape)} and {tuple(pred.shape)}"
            )
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        wanted = set(self.tap_index)
        taps: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        a = target.detach().float()
        d = pred.float() - a
        for i in range(self.depth):
            kind = VGG16_LAYER_NAMES[i][:4]
            if kind == "conv":
                if i == 0:
                    with torch.no_grad():
                        a = self._first_conv(a).to(conv_dtype)
                    if d.shape[1] == 1 and self.fold_gray:
                        w = self._cast("w0_gray", conv_dtype, channels_last)
                    else:
                        d = d.expand(-1, 3, -1, -1) / self.std
                        w = self._cast("w0", conv_dtype, channels_last)
                    d = F.conv2d(d.to(conv_dtype), w, padding=1)
                else:
                    w = self._cast(f"w{i}", conv_dtype, channels_last)
                    with torch.no_grad():
                        a = F.conv2d(a, w, self._cast(f"b{i}", conv_dtype), padding=1)
                    d = F.conv2d(d, w, padding=1)
                a = a.contiguous(memory_format=fmt)
                d = d.contiguous(memory_format=fmt)
            elif kind == "relu":
                with torch.no_grad():
                    gate = (a + d) > 0  # the prediction's ReLU gate; rounding keeps the sign
                    a_relu = F.relu(a)
                    # relu(a + d) - relu(a) = gate * d + (gate * a - relu(a)); the bracket is
                    # one of a - a, a, -a or 0: exact in any precision
                    gate_f = gate.to(d.dtype)
                    c = gate_f * a - a_relu
                    a = a_relu
                d = torch.addcmul(c, d, gate_f)
            else:
                d, a = _pool_delta(a, d)
            if i in wanted:
                taps[i] = (a, d)
        return [taps[i] for i in self.tap_index]


def _pool_delta(a: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 max-pool of the pair: ``(maxpool(a + d) - maxpool(a), maxpool(a))``, formed in fp32.

    fp32 keeps ``a + d`` (and so the prediction's window maximum and the difference) accurate
    when ``a`` is bf16; the result goes back to ``a``'s dtype.
    """
    with torch.no_grad():
        pooled = F.max_pool2d(a, 2, 2)
        pooled32 = pooled.float()
    diff = F.max_pool2d(a.float() + d.float(), 2, 2) - pooled32
    return diff.to(d.dtype), pooled
