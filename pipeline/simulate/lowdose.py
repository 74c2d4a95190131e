"""Low-dose simulation in the sinogram domain: (a) pairs from a clean image, (b) noise insertion.

(a) :func:`simulate_pair` -- a clean (noiseless) HU volume is projected; full-dose photons are
    drawn with Poisson statistics, the low-dose photons are a binomial thinning of them (the
    same photons, fewer of them), electronic noise is added to both, and both are reconstructed
    with FBP. The reference is therefore a realistic *noisy* full-dose image.
(b) :func:`insert_noise` -- a real full-dose scan already carries full-dose noise; we add only
    the *extra* variance of going from dose 1 to dose d, ``var(d) - var(1)`` per line integral
    (Yu et al. 2012), as zero-mean Gaussian sinogram noise, reconstruct that noise with FBP
    (linear) and add it to the image. The image itself is never re-projected and reconstructed,
    so its resolution and texture are untouched.

Slices are processed independently (2-D parallel beam per axial slice) in fixed chunks, each
with its own generator seeded from (seed, chunk index): results are deterministic for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import SimulationError
from pipeline.intensity import AIR_HU
from pipeline.simulate.geometry import MU_WATER_PER_MM, ParallelGeometry, hu_to_mu, mu_to_hu
from pipeline.simulate.matrices import sim_threads, sparse_ok
from pipeline.simulate.noise import (
    DEFAULT_ELECTRONIC_SD,
    DEFAULT_TARGET_SD_HU,
    NoiseModel,
    _log_measure,
    calibrate_noise,
    check_dose,
    thin_counts,
)
from pipeline.simulate.projector import FilterName, fbp, forward_project

#: slices projected together (memory ~ chunk x views x bins x 8 bytes); larger when the
#: projector matrices are built per batch (large images), to share that cost
_CHUNK = 8
_CHUNK_STREAMED = 32


@dataclass(frozen=True)
class SimulationSettings:
    """Scanner-side choices shared by both modes (recorded in headers and sidecars)."""

    target_sd_hu: float = DEFAULT_TARGET_SD_HU
    electronic_sd: float = DEFAULT_ELECTRONIC_SD
    filter_name: str = FilterName.HANN.value
    n_views: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "target_sd_hu": self.target_sd_hu,
            "electronic_sd_counts": self.electronic_sd,
            "filter": self.filter_name,
            "n_views": self.n_views,
            "geometry": "2-D parallel beam per axial slice",
            "mu_water_per_mm": MU_WATER_PER_MM,
        }


@dataclass(frozen=True)
class PairResult:
    """Output of :func:`simulate_pair` (HU arrays (Z, Y, X) float32)."""

    full_hu: np.ndarray
    low_hu: np.ndarray
    noise: NoiseModel
    geometry: ParallelGeometry


def _as_volume(hu: np.ndarray) -> np.ndarray:
    arr = np.asarray(hu, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected HU of shape (Z, Y, X) or (Y, X), found {arr.shape}")
    if not np.isfinite(arr).all():
        raise SimulationError("HU volume contains NaN or infinite values")
    return arr


def _square(arr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad (Z, Y, X) with air to a square in-plane grid; returns the array and the (y, x) offset."""
    _, ny, nx = arr.shape
    n = max(ny, nx)
    if ny == nx:
        return arr, (0, 0)
    oy, ox = (n - ny) // 2, (n - nx) // 2
    out = np.full((arr.shape[0], n, n), AIR_HU, dtype=np.float32)
    out[:, oy : oy + ny, ox : ox + nx] = arr
    return out, (oy, ox)


def _setup(
    arr: np.ndarray, pixel_mm: float, settings: SimulationSettings, noise: NoiseModel | None
) -> tuple[ParallelGeometry, NoiseModel]:
    geom = ParallelGeometry.for_image(arr.shape[-1], pixel_mm, settings.n_views)
    model = noise or calibrate_noise(
        geom, FilterName(settings.filter_name).value, settings.target_sd_hu, settings.electronic_sd
    )
    return geom, model


def _chunk(geom: ParallelGeometry) -> int:
    return _CHUNK if sparse_ok(geom) else _CHUNK_STREAMED


def _generator(seed: int, chunk: int, stream: str) -> torch.Generator:
    mix = int.from_bytes(f"{stream}".encode()[:8].ljust(8, b"\0"), "little")
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + chunk * 7919 + mix) % (2**63))


def simulate_pair(
    clean_hu: np.ndarray,
    pixel_mm: float,
    dose: float,
    *,
    seed: int = 0,
    settings: SimulationSettings | None = None,
    noise: NoiseModel | None = None,
) -> PairResult:
    """Mode (a): noisy full-dose and low-dose (``dose``) reconstructions of a clean HU volume."""
    with sim_threads():
        return _simulate_pair(clean_hu, pixel_mm, check_dose(dose), seed, settings, noise)


def _simulate_pair(
    clean_hu: np.ndarray,
    pixel_mm: float,
    dose: float,
    seed: int,
    settings: SimulationSettings | None,
    noise: NoiseModel | None,
) -> PairResult:
    settings = settings or SimulationSettings()
    arr, (oy, ox) = _square(_as_volume(clean_hu))
    geom, model = _setup(arr, pixel_mm, settings, noise)
    full = np.empty_like(arr)
    low = np.empty_like(arr)
    step = _chunk(geom)
    for c, z0 in enumerate(range(0, arr.shape[0], step)):
        gen = _generator(seed, c, "pair")
        p = forward_project(hu_to_mu(arr[z0 : z0 + step]), geom)
        photons = torch.poisson(model.i0 * torch.exp(-p.double()), generator=gen)
        low_photons = thin_counts(photons, dose, gen)
        p_full = _log_measure(photons, model, 1.0, gen)
        p_low = _log_measure(low_photons, model, dose, gen)
        recon = fbp(torch.cat((p_full, p_low)), geom, settings.filter_name)
        hu = mu_to_hu(recon).numpy()
        k = p.shape[0]
        full[z0 : z0 + k], low[z0 : z0 + k] = hu[:k], hu[k:]
    ny, nx = np.asarray(clean_hu).shape[-2:]
    crop = (slice(None), slice(oy, oy + ny), slice(ox, ox + nx))
    return PairResult(full[crop], low[crop], model, geom)


def insert_noise(
    full_hu: np.ndarray,
    pixel_mm: float,
    dose: float,
    *,
    seed: int = 0,
    settings: SimulationSettings | None = None,
    noise: NoiseModel | None = None,
) -> tuple[np.ndarray, NoiseModel]:
    """Mode (b): emulate ``dose`` from a full-dose HU volume by adding the extra sinogram noise.

    ``noise`` (or ``settings.target_sd_hu``) describes the *full-dose* scan: the calibrated I0 is
    the one at which the input's noise level would arise, so the added noise is consistent with
    the noise the input already has."""
    with sim_threads():
        return _insert_noise(full_hu, pixel_mm, check_dose(dose), seed, settings, noise)


def _insert_noise(
    full_hu: np.ndarray,
    pixel_mm: float,
    dose: float,
    seed: int,
    settings: SimulationSettings | None,
    noise: NoiseModel | None,
) -> tuple[np.ndarray, NoiseModel]:
    settings = settings or SimulationSettings()
    src = _as_volume(full_hu)
    arr, (oy, ox) = _square(src)
    geom, model = _setup(arr, pixel_mm, settings, noise)
    out = np.empty_like(arr)
    scale = 1000.0 / MU_WATER_PER_MM
    step = _chunk(geom)
    for c, z0 in enumerate(range(0, arr.shape[0], step)):
        gen = _generator(seed, c, "insert")
        mu = hu_to_mu(arr[z0 : z0 + step])
        p = forward_project(mu, geom) if sparse_ok(geom) else coarse_projection(mu, geom)
        sd = torch.sqrt(model.extra_variance(p.double(), dose))
        e = (sd * torch.randn(p.shape, generator=gen, dtype=torch.float64)).to(torch.float32)
        out[z0 : z0 + p.shape[0]] = (
            arr[z0 : z0 + p.shape[0]] + (fbp(e, geom, settings.filter_name) * scale).numpy()
        )
    ny, nx = src.shape[-2:]
    return out[:, oy : oy + ny, ox : ox + nx], model


def coarse_projection(mu: torch.Tensor, geom: ParallelGeometry) -> torch.Tensor:
    """Line integrals on ``geom`` computed on a 2x coarser grid and interpolated (B, A, D).

    Noise insertion needs the projections only for the variance map exp(p), which is smooth; a
    2x2-pooled image on the cached sparse projector gives it at a fraction of the cost of the
    full-resolution matrix-free projector (large images)."""
    n = mu.shape[-1]
    pad = n % 2
    m = torch.nn.functional.pad(mu, (0, pad, 0, pad)) if pad else mu
    coarse = torch.nn.functional.avg_pool2d(m.unsqueeze(1), 2).squeeze(1)
    cg = ParallelGeometry.for_image(coarse.shape[-1], 2 * geom.pixel_mm)
    pc = forward_project(coarse, cg).double()  # (B, A', D')
    # angles 0..pi inclusive: the view at pi is view 0 mirrored in t
    ext = torch.cat((pc, pc[:, :1].flip(-1)), dim=1)
    u = geom.angles() / (math.pi / cg.n_views)  # target views in coarse view units
    i0 = u.floor().long().clamp(0, cg.n_views - 1)
    w = (u - i0).unsqueeze(-1)
    by_view = ext[:, i0] * (1 - w) + ext[:, i0 + 1] * w  # (B, A, D')
    # detector: target bin centres in coarse bin units (zero outside the coarse detector)
    v = geom.det_centres_mm() / cg.det_mm + (cg.n_det - 1) / 2.0
    j0 = v.floor().long()
    wv = v - j0
    padded = torch.nn.functional.pad(by_view, (1, 1))  # index -1 and D' read zeros
    lo = padded[..., (j0 + 1).clamp(0, cg.n_det + 1)]
    hi = padded[..., (j0 + 2).clamp(0, cg.n_det + 1)]
    return (lo * (1 - wv) + hi * wv).float()
