"""Non-learned baselines behind ``ldct denoise --model bm3d|nlm``: blind BM3D and non-local means.

Both run slice by slice with no user parameter: each slice's noise SD (HU) is estimated from the
slice itself by :func:`estimate_noise_sd_hu` (robust local SD in soft tissue inside the body;
CT noise is spatially correlated, so wavelet/MAD estimators of white noise read it 2-4x low).

* ``nlm``: scikit-image :func:`~skimage.restoration.denoise_nl_means` (BSD), ``fast_mode``,
  ``h = nlm_h_factor * sigma`` and ``sigma`` passed for the bias correction.
* ``bm3d``: the ``bm3d`` package (Tampere University licence, **non-commercial use only**; the
  optional extra ``pip install 'ldct-pipeline[baselines]'``, never a required dependency),
  ``sigma_psd = bm3d_sigma_factor * sigma`` (white-noise model; the factor > 1 compensates for
  the correlated noise and was chosen on the training-family phantoms, never on held-out data).

Scaling: both see the slice in the soft-tissue display scale ``(HU + 160) / 400`` *without*
clipping (so -160 HU -> 0, 240 HU -> 1, lung and bone keep their values beyond), with sigma in
the same units (sigma_HU / 400). BM3D's block-matching thresholds are absolute in a [0, 1]
image, so the scale matters for it; for NLM it is only a change of units.

:class:`pipeline.infer.classical.ClassicalDenoiser` wraps these functions in the denoising
engine's interface; instead of a weights hash it carries :func:`config_sha256` (method, library
version, parameters).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field
from scipy import ndimage as ndi

from pipeline.config import StrictModel
from pipeline.errors import DependencyError
from pipeline.utils.shapes import check_shape

log = logging.getLogger(__name__)

#: Names that ``--model`` resolves to a non-learned denoiser (not a checkpoint path).
CLASSICAL_MODELS: tuple[str, ...] = ("bm3d", "nlm")
#: The slice scale both methods see: HU -> (HU - lo) / width, unclipped (soft-tissue window).
SCALE_LO_HU = -160.0
SCALE_WIDTH_HU = 400.0
#: Noise estimate: local SD over ``ESTIMATE_WINDOW_PX`` windows whose mean lies in this HU band
#: (soft tissue / water), inside the body eroded by the window, at this percentile.
ESTIMATE_WINDOW_PX = 9
ESTIMATE_BAND_HU = (-150.0, 150.0)
ESTIMATE_PERCENTILE = 10.0
#: Fewer qualifying pixels than this: the estimate falls back to the whole slice's finest Haar
#: diagonal detail (MAD), which reads correlated noise low but never fails.
ESTIMATE_MIN_PIXELS = 200
BM3D_INSTALL_HINT = "pip install 'ldct-pipeline[baselines]'"


class ClassicalConfig(StrictModel):
    """Parameters of the non-learned denoisers (``--set classical.KEY=VALUE``)."""

    #: Noise SD in HU used for every slice; None: estimated per slice from the image (blind).
    sigma_hu: float | None = Field(default=None, gt=0)
    #: BM3D ``sigma_psd`` = factor x noise SD (white-noise model of correlated CT noise).
    bm3d_sigma_factor: float = Field(default=2.0, gt=0)
    #: NLM filter strength ``h`` = factor x noise SD.
    nlm_h_factor: float = Field(default=1.0, gt=0)
    nlm_patch_size: int = Field(default=5, ge=3)
    nlm_patch_distance: int = Field(default=6, ge=1)


def is_classical(name: str | None) -> bool:
    """True when ``--model`` names a non-learned denoiser (``bm3d`` or ``nlm``)."""
    return name is not None and name.strip().lower() in CLASSICAL_MODELS


def _haar_mad_sd(hu: np.ndarray) -> float:
    h, w = hu.shape[0] // 2 * 2, hu.shape[1] // 2 * 2
    a = hu[:h, :w].astype(np.float64)
    hh = (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745) if hh.size else 0.0


def estimate_noise_sd_hu(hu: np.ndarray) -> float:
    """Blind noise SD (HU) of one ``(H, W)`` slice: a low percentile of the local SD in soft tissue.

    Local SDs (``ESTIMATE_WINDOW_PX`` windows, unbiased) are taken where the window lies inside
    the body mask and its mean is in ``ESTIMATE_BAND_HU``; the ``ESTIMATE_PERCENTILE`` percentile
    excludes windows on edges and texture. It measures pixel SD whatever the noise correlation
    (reconstruction kernel). Returns 0.0 for a slice with no variation at all.
    """
    from pipeline.evaluate.body_mask import body_mask_slice

    check_shape("hu", hu, ("H", "W"))
    x = np.asarray(hu, dtype=np.float64)
    s = ESTIMATE_WINDOW_PX
    mean = ndi.uniform_filter(x, s, mode="nearest")
    mean2 = ndi.uniform_filter(x * x, s, mode="nearest")
    sd = np.sqrt(np.maximum(mean2 - mean * mean, 0.0) * (s * s / (s * s - 1.0)))
    inside = ndi.binary_erosion(body_mask_slice(x), iterations=s, border_value=0)
    ok = inside & (mean >= ESTIMATE_BAND_HU[0]) & (mean <= ESTIMATE_BAND_HU[1])
    if int(ok.sum()) >= ESTIMATE_MIN_PIXELS:
        return float(np.percentile(sd[ok], ESTIMATE_PERCENTILE))
    return _haar_mad_sd(x)


def to_scale(hu: np.ndarray) -> np.ndarray:
    """HU -> the unclipped soft-tissue scale both methods run on (float64)."""
    return (np.asarray(hu, dtype=np.float64) - SCALE_LO_HU) / SCALE_WIDTH_HU


def from_scale(x: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`to_scale` (float32 HU)."""
    return (np.asarray(x, dtype=np.float64) * SCALE_WIDTH_HU + SCALE_LO_HU).astype(np.float32)


def nlm_slice(hu: np.ndarray, sigma_hu: float, cfg: ClassicalConfig) -> np.ndarray:
    """Non-local means of one HU slice with noise SD ``sigma_hu`` (float32 HU)."""
    from skimage.restoration import denoise_nl_means

    if sigma_hu <= 0:
        return np.asarray(hu, dtype=np.float32).copy()
    sigma = sigma_hu / SCALE_WIDTH_HU
    out = denoise_nl_means(
        to_scale(hu),
        h=cfg.nlm_h_factor * sigma,
        sigma=sigma,
        patch_size=cfg.nlm_patch_size,
        patch_distance=cfg.nlm_patch_distance,
        fast_mode=True,
    )
    return from_scale(out)


def bm3d_module() -> Any:
    try:
        import bm3d
    except ImportError as exc:
        raise DependencyError(
            "model 'bm3d' needs the optional bm3d package (Tampere University licence, "
            f"non-commercial use only), which is not installed: {BM3D_INSTALL_HINT}"
        ) from exc
    return bm3d


def bm3d_slice(hu: np.ndarray, sigma_hu: float, cfg: ClassicalConfig) -> np.ndarray:
    """BM3D (both stages) of one HU slice with noise SD ``sigma_hu`` (float32 HU)."""
    bm3d = bm3d_module()
    if sigma_hu <= 0:
        return np.asarray(hu, dtype=np.float32).copy()
    out = bm3d.bm3d(to_scale(hu), sigma_psd=cfg.bm3d_sigma_factor * sigma_hu / SCALE_WIDTH_HU)
    return from_scale(out)


METHODS: dict[str, Callable[[np.ndarray, float, ClassicalConfig], np.ndarray]] = {
    "bm3d": bm3d_slice,
    "nlm": nlm_slice,
}
_LIBRARY = {"bm3d": "bm3d", "nlm": "scikit-image"}


def library_version(name: str) -> str:
    """``"<package> <version>"`` of the library behind a classical method."""
    pkg = _LIBRARY[name]
    try:
        return f"{pkg} {importlib.metadata.version(pkg)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{pkg} (not installed)"


def method_params(name: str, cfg: ClassicalConfig) -> dict[str, Any]:
    """The parameters that change ``name``'s output (what the config hash covers)."""
    common: dict[str, Any] = {"sigma_hu": cfg.sigma_hu, "scale": [SCALE_LO_HU, SCALE_WIDTH_HU]}
    if cfg.sigma_hu is None:
        common["estimator"] = {
            "window_px": ESTIMATE_WINDOW_PX,
            "band_hu": list(ESTIMATE_BAND_HU),
            "percentile": ESTIMATE_PERCENTILE,
        }
    if name == "bm3d":
        return {**common, "sigma_factor": cfg.bm3d_sigma_factor, "profile": "np", "stages": "all"}
    return {
        **common,
        "h_factor": cfg.nlm_h_factor,
        "patch_size": cfg.nlm_patch_size,
        "patch_distance": cfg.nlm_patch_distance,
        "fast_mode": True,
    }


def config_sha256(name: str, cfg: ClassicalConfig) -> str:
    """SHA-256 of the method, its library version and parameters (the 'weights hash' stand-in)."""
    blob = {"method": name, "library": library_version(name), "params": method_params(name, cfg)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
