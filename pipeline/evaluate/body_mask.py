"""Body (patient) mask from HU: the region where HU metrics and no-reference QA are measured.

Rule (documented in docs/evaluation.md): per slice, pixels above ``threshold_hu`` (default
-500 HU, between air and fat), opened with a small disk to cut thin couch/cable bridges,
the largest connected component kept, holes filled (lungs and bowel gas stay inside).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

BODY_THRESHOLD_HU = -500.0


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return np.asarray(xx * xx + yy * yy <= radius * radius)


def body_mask_slice(
    hu: np.ndarray, threshold_hu: float = BODY_THRESHOLD_HU, open_radius_px: int = 2
) -> np.ndarray:
    """Boolean body mask of one ``(H, W)`` HU slice (all False when nothing is above threshold)."""
    if hu.ndim != 2:
        raise ValueError(f"body_mask_slice: expected a 2-D slice, found shape {hu.shape}")
    fg = hu > threshold_hu
    if open_radius_px > 0:
        fg = ndi.binary_opening(fg, structure=_disk(open_radius_px))
    labels, n = ndi.label(fg)
    if n == 0:
        return np.zeros_like(fg, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    return np.asarray(ndi.binary_fill_holes(largest), dtype=bool)


def body_mask(
    hu: np.ndarray, threshold_hu: float = BODY_THRESHOLD_HU, open_radius_px: int = 2
) -> np.ndarray:
    """Body mask for a ``(Z, H, W)`` volume or ``(H, W)`` slice, slice by slice."""
    if hu.ndim == 2:
        return body_mask_slice(hu, threshold_hu, open_radius_px)
    if hu.ndim != 3:
        raise ValueError(f"body_mask: expected (Z, H, W) or (H, W), found shape {hu.shape}")
    return np.stack([body_mask_slice(s, threshold_hu, open_radius_px) for s in hu])
