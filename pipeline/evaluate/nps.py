"""Noise magnitude and texture per AAPM TG-233 (Samei et al., Med Phys 46(11), 2019).

The NPS is measured on **noise-only** images, never on an image that still holds anatomy:

* ``adjacent``: ``(I[z+1] - I[z]) / sqrt(2)`` of two neighbouring slices of the *same* series
  (anatomy common to both cancels; the difference of two independent realisations has twice
  the variance, hence ``sqrt(2)``). Used for every role (low, denoised, full), so the three
  are measured the same way and the denoised noise is compared with the full-dose target.
  It assumes slice-to-slice independent noise (true for axial slices reconstructed without
  overlap; overlapping/thick-slab reconstructions make it read low).
* ``minus_full``: ``I - full`` of the same slice (a paired image, TG-233 section 4.2) for
  ``low`` and ``denoised`` when a reference exists. For projection-domain noise insertion or
  photon thinning (Mayo/TCIA quarter dose, this project's simulator) ``low - full`` is exactly
  the noise added by the dose reduction; ``denoised - full`` is the residual error (noise and
  bias). Not divided by ``sqrt(2)``: the two images are not equal-dose realisations.

ROIs are square, sized in mm (:data:`ROI_MM`, >= 64 px at 512^2 / 0.74 mm), chosen where the
reference (full dose, else the input) is uniform in both slices, and identical in every role.
Each noise patch is detrended by a least-squares 2nd-order 2-D polynomial, then
``NPS = |DFT|^2 dx dy / (nx ny)`` (HU^2 mm^2) averaged over patches, radially averaged in
annuli of width ``1 / (n dx)`` (n/2 bins up to Nyquist). Peak frequency = the annulus with
the largest NPS; mean frequency = ``sum f NPS / sum NPS`` (cycles/mm); noise SD = square root of
the mean patch variance (equals the NPS integral). White noise of SD sigma gives a flat NPS of
``sigma^2 dx dy`` (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.evaluate.noise import Roi, find_uniform_rois, radial_nps

#: ROI side (mm): 48 mm = 65 px at 0.742 mm (512^2 in a 380 mm FOV), 32 px at 1.48 mm (256^2).
ROI_MM = 48.0
#: Smallest ROI side (px) with which an NPS is still computed (8 radial bins).
MIN_ROI_PX = 16
#: ROIs per slice pair.
N_ROIS = 3
#: Polynomial order of the detrending surface.
DETREND_ORDER = 2

METHOD_TEXT = {
    "adjacent": "adjacent-slice difference / sqrt(2), 2nd-order detrended",
    "minus_full": "paired difference (role - full dose), 2nd-order detrended",
}


def roi_size_px(pixel_mm: float, shape: tuple[int, int]) -> int:
    """ROI side in px for :data:`ROI_MM` (even, at most half the smaller image side)."""
    n = round(ROI_MM / pixel_mm)
    n = min(n, min(shape) // 2)
    return n - (n % 2)


def detrend(patches: np.ndarray, order: int = DETREND_ORDER) -> np.ndarray:
    """Subtract the least-squares 2-D polynomial (total degree ``order``) from each patch."""
    if patches.ndim != 3:
        raise ValueError(f"detrend: expected (N, ny, nx) patches, found {patches.shape}")
    _, ny, nx = patches.shape
    y, x = np.mgrid[0:ny, 0:nx]
    y = (y - (ny - 1) / 2) / ny
    x = (x - (nx - 1) / 2) / nx
    cols = [x**i * y**j for i in range(order + 1) for j in range(order + 1 - i)]
    a = np.stack([c.ravel() for c in cols], axis=1)  # (ny*nx, k)
    b = patches.reshape(patches.shape[0], -1).T.astype(np.float64)  # (ny*nx, N)
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return (b - a @ coef).T.reshape(patches.shape)


@dataclass(frozen=True)
class NoiseSpectrum:
    """Radial NPS of one role by one method, with its summary numbers."""

    method: str
    freq_cyc_mm: np.ndarray
    nps_hu2_mm2: np.ndarray
    noise_sd_hu: float
    mean_freq_cyc_mm: float
    peak_freq_cyc_mm: float
    n_patches: int
    roi_size_px: int


def spectrum(
    patches: np.ndarray, spacing_mm: tuple[float, float], method: str
) -> NoiseSpectrum | None:
    """TG-233 NPS of noise-only ``(N, n, n)`` patches (detrended here); None without patches."""
    if patches.size == 0 or patches.shape[0] == 0:
        return None
    d = detrend(patches)
    freq, nps = radial_nps(d, spacing_mm)
    total = float(np.sum(nps))
    mean_f = float(np.sum(freq * nps) / total) if total > 0 else float("nan")
    peak_f = float(freq[int(np.argmax(nps))]) if len(freq) else float("nan")
    return NoiseSpectrum(
        method=method,
        freq_cyc_mm=freq,
        nps_hu2_mm2=nps,
        noise_sd_hu=float(math.sqrt(np.mean(d.var(axis=(1, 2), ddof=1)))),
        mean_freq_cyc_mm=mean_f,
        peak_freq_cyc_mm=peak_f,
        n_patches=int(patches.shape[0]),
        roi_size_px=int(patches.shape[1]),
    )


def pair_rois(ref_hu: np.ndarray, inner: np.ndarray, size: int) -> list[tuple[int, list[Roi]]]:
    """Per adjacent slice pair ``(z, z+1)``: uniform ROIs on the pair's mean reference image."""
    out: list[tuple[int, list[Roi]]] = []
    if size < MIN_ROI_PX:
        return out
    for z in range(ref_hu.shape[0] - 1):
        mean = 0.5 * (ref_hu[z].astype(np.float64) + ref_hu[z + 1])
        rois = find_uniform_rois(mean, inner[z] & inner[z + 1], size=size, n_rois=N_ROIS)
        out.append((z, rois))
    return out


def slice_rois(ref_hu: np.ndarray, inner: np.ndarray, size: int) -> list[tuple[int, list[Roi]]]:
    """Per slice: uniform ROIs on the reference (for the paired ``minus_full`` method)."""
    if size < MIN_ROI_PX:
        return []
    return [
        (z, find_uniform_rois(ref_hu[z], inner[z], size=size, n_rois=N_ROIS))
        for z in range(ref_hu.shape[0])
    ]


def adjacent_patches(vol: np.ndarray, rois: list[tuple[int, list[Roi]]]) -> np.ndarray:
    """``(I[z+1] - I[z]) / sqrt(2)`` in every ROI of every slice pair -> ``(N, n, n)``."""
    out = [
        (r.take(vol[z + 1]).astype(np.float64) - r.take(vol[z])) / math.sqrt(2.0)
        for z, rs in rois
        for r in rs
    ]
    return np.stack(out) if out else np.zeros((0, 0, 0))


def paired_patches(
    vol: np.ndarray, full: np.ndarray, rois: list[tuple[int, list[Roi]]]
) -> np.ndarray:
    """``I[z] - full[z]`` in every ROI -> ``(N, n, n)``."""
    out = [r.take(vol[z]).astype(np.float64) - r.take(full[z]) for z, rs in rois for r in rs]
    return np.stack(out) if out else np.zeros((0, 0, 0))


def role_spectra(
    vols: dict[str, np.ndarray],
    inner: np.ndarray,
    pixel_mm: tuple[float, float],
) -> dict[str, dict[str, NoiseSpectrum]]:
    """``{role: {method: NoiseSpectrum}}`` for every role (ROIs chosen on full, else low)."""
    ref = vols.get("full", vols["low"])
    size = roi_size_px(float(np.mean(pixel_mm)), (ref.shape[1], ref.shape[2]))
    adj = pair_rois(ref, inner, size)
    per_slice = slice_rois(ref, inner, size) if "full" in vols else []
    out: dict[str, dict[str, NoiseSpectrum]] = {}
    for role, vol in vols.items():
        found: dict[str, NoiseSpectrum] = {}
        s = spectrum(adjacent_patches(vol, adj), pixel_mm, "adjacent")
        if s is not None:
            found["adjacent"] = s
        if "full" in vols and role != "full":
            s = spectrum(paired_patches(vol, vols["full"], per_slice), pixel_mm, "minus_full")
            if s is not None:
                found["minus_full"] = s
        out[role] = found
    return out
