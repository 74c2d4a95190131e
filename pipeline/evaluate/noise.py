"""No-reference noise QA: uniform ROIs, ROI mean/SD in HU, and the radial noise power spectrum.

* ROIs: square windows of ``size_px`` whose local SD (on the low-dose input) is lowest, fully
  inside the eroded body mask, with mean HU in a soft-tissue/water band; chosen greedily
  without overlap. The same ROIs are then measured in every series (low, denoised, full).
* NPS (ICRU 87 / IEC style, single-realisation form): each ROI minus its mean, 2-D periodogram
  ``|DFT|^2 * (dx * dy) / (nx * ny)`` in HU^2 mm^2, averaged over ROIs, then averaged over
  annuli of width ``1 / (n * dx)`` cycles/mm. White noise of SD sigma has NPS
  ``sigma^2 * dx * dy`` at every frequency (tested); the NPS integrates to the variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class Roi:
    """A square ROI: top-left corner and side length in pixels."""

    y0: int
    x0: int
    size: int

    def take(self, img: np.ndarray) -> np.ndarray:
        return img[..., self.y0 : self.y0 + self.size, self.x0 : self.x0 + self.size]


#: Below this SD (HU) a window holds no measurable noise (integer HU quantisation alone is 0.29).
MIN_NOISE_SD_HU = 0.5


def default_roi_size(shape: tuple[int, int]) -> int:
    """ROI side for an image: 1/16 of the smaller side, at least 16 px (32 px for 512x512)."""
    return max(16, min(shape) // 16)


def local_mean_sd(img: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD over ``size x size`` windows, indexed by the window's top-left corner."""
    x = img.astype(np.float64)
    m = ndi.uniform_filter(x, size, mode="constant")
    m2 = ndi.uniform_filter(x * x, size, mode="constant")
    sd = np.sqrt(np.maximum(m2 - m * m, 0.0))
    off = size // 2  # uniform_filter centres the window; shift to top-left indexing
    h, w = img.shape[0] - size + 1, img.shape[1] - size + 1
    return m[off : off + h, off : off + w], sd[off : off + h, off : off + w]


def find_uniform_rois(
    hu: np.ndarray,
    body: np.ndarray,
    *,
    size: int | None = None,
    n_rois: int = 3,
    hu_band: tuple[float, float] = (-150.0, 150.0),
) -> list[Roi]:
    """Up to ``n_rois`` non-overlapping uniform ROIs of one ``(H, W)`` slice (lowest local SD)."""
    if hu.ndim != 2 or body.shape != hu.shape:
        raise ValueError(f"find_uniform_rois: expected matching 2-D arrays, found {hu.shape}")
    size = size or default_roi_size((hu.shape[0], hu.shape[1]))
    if min(hu.shape) < size:
        return []
    mean, sd = local_mean_sd(hu, size)
    inside = local_mean_sd(body.astype(np.float64), size)[0] > 1 - 1e-9
    ok = inside & (mean >= hu_band[0]) & (mean <= hu_band[1]) & (sd >= MIN_NOISE_SD_HU)
    score = np.where(ok, sd, np.inf)
    rois: list[Roi] = []
    for _ in range(n_rois):
        idx = int(np.argmin(score))
        if not np.isfinite(score.flat[idx]):
            break
        y, x = np.unravel_index(idx, score.shape)
        rois.append(Roi(int(y), int(x), size))
        score[max(0, y - size + 1) : y + size, max(0, x - size + 1) : x + size] = np.inf
    return rois


def roi_stats(hu: np.ndarray, rois: list[Roi]) -> list[tuple[float, float]]:
    """(mean HU, sample SD HU) of each ROI in a ``(H, W)`` slice."""
    return [(float(r.take(hu).mean()), float(r.take(hu).std(ddof=1))) for r in rois]


def nps_2d(patches: np.ndarray, spacing_mm: tuple[float, float]) -> np.ndarray:
    """Mean 2-D NPS (HU^2 mm^2, fftshifted) of ``(N, n, n)`` noise patches (each de-meaned)."""
    if patches.ndim != 3 or patches.shape[0] == 0:
        raise ValueError(f"nps_2d: expected (N, ny, nx) patches, found {patches.shape}")
    _, ny, nx = patches.shape
    dy, dx = spacing_mm
    x = patches - patches.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x)) ** 2
    return np.fft.fftshift(power.mean(axis=0) * (dx * dy) / (nx * ny))


def radial_nps(
    patches: np.ndarray, spacing_mm: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged NPS: ``(freq_cyc_mm, nps_hu2_mm2)``; the DC bin is dropped."""
    nps = nps_2d(patches, spacing_mm)
    _, ny, nx = patches.shape
    fy = np.fft.fftshift(np.fft.fftfreq(ny, d=spacing_mm[0]))
    fx = np.fft.fftshift(np.fft.fftfreq(nx, d=spacing_mm[1]))
    fr = np.hypot(fy[:, None], fx[None, :])
    df = 1.0 / (max(nx * spacing_mm[1], ny * spacing_mm[0]))
    nyq = min(0.5 / spacing_mm[0], 0.5 / spacing_mm[1])
    bins = np.rint(fr / df).astype(np.int64)
    n_bins = int(nyq / df) + 1
    sel = (bins >= 1) & (bins < n_bins)
    sums = np.bincount(bins[sel], weights=nps[sel], minlength=n_bins)
    counts = np.bincount(bins[sel], minlength=n_bins)
    keep = counts[1:] > 0
    freq = (np.arange(n_bins) * df)[1:][keep]
    return freq, (sums[1:] / np.maximum(counts[1:], 1))[keep]


def nps_mean_peak(freq: np.ndarray, nps: np.ndarray) -> tuple[float, float]:
    """Mean (power-weighted centroid) and peak frequency of a radial NPS, cycles/mm."""
    total = float(np.sum(nps))
    if total <= 0 or len(freq) == 0:
        return float("nan"), float("nan")
    return float(np.sum(freq * nps) / total), float(freq[int(np.argmax(nps))])
