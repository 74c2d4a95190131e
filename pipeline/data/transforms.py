"""Paired MONAI dict transforms: one random draw per pair, applied identically to every key.

Each random transform follows MONAI's ``Randomizable`` protocol (``set_random_state`` then
``randomize``), so a dataset can re-seed the whole chain per sample and replay any sample exactly.
Images are NumPy HU arrays ``(Y, X)`` or ``(1, Y, X)`` until :class:`HUToModeld` turns them into
float32 tensors ``(1, H, W)`` in the model range (via :mod:`pipeline.intensity`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable

from pipeline.errors import DatasetError
from pipeline.intensity import MODEL_RANGE_HU, hu_to_model

KEYS: tuple[str, str] = ("low", "full")
#: HU below which a pixel counts as air when rejecting patches.
AIR_THRESHOLD_HU = -900.0


def _as_2d(img: np.ndarray, key: Hashable) -> np.ndarray:
    if img.ndim == 3 and img.shape[0] == 1:
        return img[0]
    if img.ndim != 2:
        raise ValueError(f"{key!r}: expected a (Y, X) or (1, Y, X) slice, found shape {img.shape}")
    return img


def air_fraction(patch_hu: np.ndarray, threshold_hu: float = AIR_THRESHOLD_HU) -> float:
    """Fraction of pixels below ``threshold_hu`` (air / outside the body)."""
    return float(np.count_nonzero(patch_hu < threshold_hu)) / max(patch_hu.size, 1)


class RandPairedPatchd(Randomizable, MapTransform):
    """Cut one random ``patch_size`` square at the same place from every key.

    Candidates whose reference image (``ref_key``) is more than ``max_air_fraction`` air are
    rejected and redrawn up to ``max_tries`` times; if all fail the least-air candidate is kept
    (so sampling always terminates). Adds ``y``, ``x`` (top-left corner) and ``air_fraction``.
    """

    def __init__(
        self,
        keys: Sequence[str] = KEYS,
        patch_size: int = 64,
        *,
        ref_key: str = "full",
        air_threshold_hu: float = AIR_THRESHOLD_HU,
        max_air_fraction: float = 0.9,
        max_tries: int = 10,
    ) -> None:
        MapTransform.__init__(self, keys)
        if patch_size < 1:
            raise DatasetError(f"patch_size must be >= 1, found {patch_size}")
        if not 0.0 <= max_air_fraction <= 1.0:
            raise DatasetError(f"max_air_fraction must be in [0, 1], found {max_air_fraction}")
        self.patch_size = int(patch_size)
        self.ref_key = ref_key
        self.air_threshold_hu = float(air_threshold_hu)
        self.max_air_fraction = float(max_air_fraction)
        self.max_tries = max(1, int(max_tries))
        self._yx = (0, 0)
        self._air = 0.0

    def randomize(self, data: Any = None) -> None:
        ref = _as_2d(np.asarray(data), self.ref_key)
        h, w = ref.shape
        p = self.patch_size
        if h < p or w < p:
            raise DatasetError(f"patch_size {p} is larger than the slice ({h}x{w})")
        best: tuple[float, int, int] | None = None
        for _ in range(self.max_tries):
            y = int(self.R.randint(0, h - p + 1))
            x = int(self.R.randint(0, w - p + 1))
            frac = air_fraction(ref[y : y + p, x : x + p], self.air_threshold_hu)
            if best is None or frac < best[0]:
                best = (frac, y, x)
            if frac <= self.max_air_fraction:
                break
        assert best is not None
        self._air, self._yx = best[0], (best[1], best[2])

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(d[self.ref_key])
        y, x = self._yx
        p = self.patch_size
        for key in self.key_iterator(d):
            img = _as_2d(np.asarray(d[key]), key)
            d[key] = np.array(img[y : y + p, x : x + p], dtype=np.float32)[None]
        d["y"], d["x"], d["air_fraction"] = y, x, self._air
        return d


class RandPairedFlipRot90d(Randomizable, MapTransform):
    """Apply one random rot90 (k in 0..3) and optional left-right flip to every key alike."""

    def __init__(
        self, keys: Sequence[str] = KEYS, *, flip_prob: float = 0.5, rot90: bool = True
    ) -> None:
        MapTransform.__init__(self, keys)
        self.flip_prob = float(flip_prob)
        self.rot90 = bool(rot90)
        self._k = 0
        self._flip = False

    def randomize(self, data: Any = None) -> None:
        self._k = int(self.R.randint(0, 4)) if self.rot90 else 0
        self._flip = bool(self.R.rand() < self.flip_prob)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            img = np.asarray(d[key])
            out = np.rot90(img, self._k, axes=(-2, -1))
            if self._flip:
                out = out[..., ::-1]
            d[key] = np.ascontiguousarray(out)
        d["rot90"], d["flipped"] = self._k, self._flip
        return d


class HUToModeld(MapTransform):
    """HU arrays -> float32 tensors in the model range (``hu_to_model``), shape (1, H, W)."""

    def __init__(
        self, keys: Sequence[str] = KEYS, hu_range: tuple[float, float] = MODEL_RANGE_HU
    ) -> None:
        MapTransform.__init__(self, keys)
        self.hu_range = hu_range

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = np.asarray(d[key], dtype=np.float32)
            if img.ndim == 2:
                img = img[None]
            d[key] = torch.from_numpy(
                np.ascontiguousarray(hu_to_model(img, self.hu_range), dtype=np.float32)
            )
        return d
