"""Seam-free tiled inference: overlapping tiles, Gaussian blending restricted to each tile's core.

A convolutional model's output near a tile edge sees zero padding instead of the neighbouring
pixels, so it differs from the untiled output there. MONAI's ``SlidingWindowInferer`` still
blends those border pixels (with a small Gaussian weight): measured here on a random DRL-E, its
output differed from the untiled one by up to 25 % (64 px tiles) and 5 % (128 px tiles) of the
model's largest correction (and importing MONAI costs seconds). This tiler gives the
border ``margin`` pixels of a tile (its receptive radius) weight zero unless that border is the
image border, and places tiles so that every pixel lies in some tile's core. For a model whose
receptive radius is ``margin`` the result equals the untiled output up to float rounding; the
Gaussian weight (sigma = tile/4, as MONAI's ``mode="gaussian"``) only smooths what a non-local
model might still differ by.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.errors import LdctError


def tile_starts(length: int, tile: int, margin: int) -> list[int]:
    """Tile start offsets along one axis so that tile cores (tile minus margins) cover it.

    >>> tile_starts(100, 40, 5)  # stride 30; the last tile ends at the border
    [0, 30, 60]
    >>> tile_starts(32, 64, 5)  # one tile covers the axis
    [0]
    """
    if tile >= length:
        return [0]
    stride = tile - 2 * margin
    if stride < 1:
        raise LdctError(f"tile {tile} too small for a receptive margin of {margin} px per side")
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return sorted(set(starts))


def gaussian_weight(tile_h: int, tile_w: int, device: torch.device) -> torch.Tensor:
    """Separable Gaussian centred on the tile, sigma = tile/4 per axis, peak 1 (float32)."""

    def axis(n: int) -> torch.Tensor:
        t = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
        return torch.exp(-0.5 * (t / (0.25 * n)) ** 2)

    return axis(tile_h)[:, None] * axis(tile_w)[None, :]


def tiled_apply(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    tile: int,
    margin: int,
    batch_size: int = 4,
) -> torch.Tensor:
    """Apply ``fn`` ((N, C, h, w) -> (N, C', h, w)) to (B, C, H, W) ``x`` in overlapping tiles."""
    b, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, margin), tile_starts(w, tw, margin)
    gauss = gaussian_weight(th, tw, x.device)
    out: torch.Tensor | None = None  # (B, C_out, H, W): C_out from fn (a prior channel goes in)
    norm = torch.zeros((1, 1, h, w), dtype=torch.float32, device=x.device)
    boxes = [(y0, x0) for y0 in ys for x0 in xs]
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        tiles = torch.cat([x[:, :, y0 : y0 + th, x0 : x0 + tw] for y0, x0 in chunk], dim=0)
        pred = fn(tiles).to(torch.float32)
        if out is None:
            out = torch.zeros((b, pred.shape[1], h, w), dtype=torch.float32, device=x.device)
        for k, (y0, x0) in enumerate(chunk):
            wmap = gauss.clone()
            if y0 > 0:
                wmap[:margin] = 0
            if y0 + th < h:
                wmap[th - margin :] = 0
            if x0 > 0:
                wmap[:, :margin] = 0
            if x0 + tw < w:
                wmap[:, tw - margin :] = 0
            out[:, :, y0 : y0 + th, x0 : x0 + tw] += pred[k * b : (k + 1) * b] * wmap
            norm[:, :, y0 : y0 + th, x0 : x0 + tw] += wmap
    if out is None or bool((norm <= 0).any()):
        raise RuntimeError("tiling left pixels uncovered (internal error: tile/margin mismatch)")
    return out / norm
