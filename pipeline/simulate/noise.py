"""Detector noise model and the calibration of the incident photon count I0.

Model (per detector bin and view): photons N ~ Poisson(I0 * dose * exp(-p)), measured
m = N + e with Gaussian electronic noise e ~ N(0, sigma_e^2), and the log-transformed line
integral p_hat = -log(max(m, 1) / (I0 * dose)). To first order its variance is
``var(p_hat) = exp(p) / (I0 d) + sigma_e^2 exp(2p) / (I0 d)^2`` (Yu et al. 2012, Zeng et al. 2015).

I0 is not portable between geometries (bin size, number of views), so it is *calibrated*: the
value that gives a target noise SD (default 12 HU, routine abdomen) in the centre of a water
cylinder (default 300 mm diameter, capped at 80 % of the field of view) at full dose. Because FBP
is linear, a central pixel's variance is sum_a,d w_d^2 var(p_a,d) with w the (interpolated)
filter kernel, a quadratic in 1/I0 solved in closed form -- no Monte-Carlo, no magic constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from pipeline.errors import SimulationError
from pipeline.simulate.geometry import MU_WATER_PER_MM, ParallelGeometry
from pipeline.simulate.projector import FilterName, filter_response

#: default target noise SD (HU) at the centre of the calibration water cylinder, full dose
DEFAULT_TARGET_SD_HU = 12.0
#: default electronic noise SD in photon counts (DOMAIN: ~5-10 counts)
DEFAULT_ELECTRONIC_SD = 5.0
#: default calibration cylinder diameter (mm): an average adult abdomen
DEFAULT_WATER_DIAMETER_MM = 300.0


@dataclass(frozen=True)
class NoiseModel:
    """Calibrated detector noise: incident photons per bin and view at full dose, electronics."""

    i0: float
    electronic_sd: float = DEFAULT_ELECTRONIC_SD
    #: how I0 was obtained (target SD, cylinder diameter), for headers and sidecars
    target_sd_hu: float | None = None
    water_diameter_mm: float | None = None

    def __post_init__(self) -> None:
        if not (self.i0 > 0 and math.isfinite(self.i0)):
            raise SimulationError(f"I0 must be a positive finite photon count, found {self.i0}")
        if self.electronic_sd < 0:
            raise SimulationError(f"electronic noise SD must be >= 0, found {self.electronic_sd}")

    def variance(self, p: torch.Tensor, dose: float) -> torch.Tensor:
        """First-order variance of the log line integral at ``dose`` (fraction of full dose)."""
        n = self.i0 * dose * torch.exp(-p)
        return (n + self.electronic_sd**2) / n.clamp_min(1e-12) ** 2

    def extra_variance(self, p: torch.Tensor, dose: float) -> torch.Tensor:
        """Variance to add to a full-dose line integral to emulate ``dose`` (noise insertion)."""
        return (self.variance(p, dose) - self.variance(p, 1.0)).clamp_min(0.0)


def check_dose(dose: float) -> float:
    """Validate a dose fraction: 0 < dose < 1 (fraction of the full dose)."""
    if not (isinstance(dose, int | float) and math.isfinite(dose) and 0.0 < dose < 1.0):
        raise SimulationError(
            f"dose must be a fraction of the full dose with 0 < dose < 1 (e.g. 0.25), found {dose}"
        )
    return float(dose)


def thin_counts(photons: torch.Tensor, dose: float, generator: torch.Generator) -> torch.Tensor:
    """Keep each photon with probability ``dose`` (binomial thinning): Poisson(l) -> Poisson(l d).

    Used for pairs: the low-dose photons are a random subset of the full-dose photons, so the two
    images share part of their noise, as in the quarter-dose data made by projection-domain
    insertion (AAPM/Mayo)."""
    return torch.binomial(photons, torch.full_like(photons, dose), generator=generator)


def _log_measure(
    photons: torch.Tensor, model: NoiseModel, dose: float, generator: torch.Generator
) -> torch.Tensor:
    """Add electronic noise to photon counts and take -log(m / (I0 d)), m clamped at 1 count.

    The log of a noisy count is biased upward by var(m) / (2 m^2) (second-order Taylor term);
    that term is subtracted so mean HU stays unbiased at low dose (< 2 HU, tested)."""
    e = torch.randn(photons.shape, generator=generator, dtype=torch.float64)
    measured = (photons.double() + model.electronic_sd * e).clamp_min(1.0)
    bias = (measured + model.electronic_sd**2) / (2.0 * measured**2)
    return (-torch.log(measured / (model.i0 * dose)) - bias).to(torch.float32)


def centre_variance_weights(
    geom: ParallelGeometry, filter_name: FilterName | str, n_phase: int = 32, cutoff: float = 1.0
) -> torch.Tensor:
    """Squared FBP weights (n_det,) linking per-bin line-integral variance to a central pixel.

    A pixel near the centre projects to a detector position between two bins, at a fractional
    offset phi that varies from view to view (about uniformly); back-projection interpolates
    linearly, so its FBP value is (pi / n_views) sum_a sum_d [(1-phi) k(d-c) + phi k(d-c-1)] q_a,d
    / det_mm with k the filter kernel in samples. The squared weights are averaged over phi,
    i.e. this is the mean variance over a central region of interest, not only the exact centre
    pixel (which sees no interpolation and is noisier)."""
    n_fft = 1 << math.ceil(math.log2(2 * geom.n_det))
    kernel = torch.fft.ifft(filter_response(filter_name, n_fft, cutoff).double()).real
    offsets = torch.arange(geom.n_det) - geom.n_det // 2
    k0, k1 = kernel[offsets % n_fft], kernel[(offsets - 1) % n_fft]
    phi = (torch.arange(n_phase, dtype=torch.float64) + 0.5) / n_phase
    w = (1 - phi)[:, None] * k0[None] + phi[:, None] * k1[None]
    return (w**2).mean(dim=0) * (math.pi / geom.n_views / geom.det_mm) ** 2


@lru_cache(maxsize=64)
def calibrate_noise(
    geom: ParallelGeometry,
    filter_name: str = FilterName.HANN.value,
    target_sd_hu: float = DEFAULT_TARGET_SD_HU,
    electronic_sd: float = DEFAULT_ELECTRONIC_SD,
    water_diameter_mm: float = DEFAULT_WATER_DIAMETER_MM,
    cutoff: float = 1.0,
) -> NoiseModel:
    """I0 such that a centred water cylinder shows ``target_sd_hu`` in its centre at full dose."""
    if not target_sd_hu > 0:
        raise SimulationError(f"target noise SD must be positive, found {target_sd_hu} HU")
    diameter = min(water_diameter_mm, 0.8 * geom.fov_mm)
    r = diameter / 2.0
    t = (torch.arange(geom.n_det, dtype=torch.float64) - geom.n_det // 2) * geom.det_mm
    p = 2.0 * MU_WATER_PER_MM * torch.sqrt((r**2 - t**2).clamp_min(0.0))  # same in every view
    # squared weights summed over views
    w2 = centre_variance_weights(geom, filter_name, cutoff=cutoff) * geom.n_views
    # var_mu = A / I0 + B / I0^2 with A = sum w2 e^p, B = sigma_e^2 sum w2 e^2p
    a = float((w2 * torch.exp(p)).sum())
    b = float((w2 * torch.exp(2 * p)).sum()) * electronic_sd**2
    target_mu = target_sd_hu * MU_WATER_PER_MM / 1000.0
    v = target_mu**2
    i0 = (a + math.sqrt(a * a + 4.0 * v * b)) / (2.0 * v)
    return NoiseModel(
        i0=i0,
        electronic_sd=electronic_sd,
        target_sd_hu=target_sd_hu,
        water_diameter_mm=diameter,
    )
