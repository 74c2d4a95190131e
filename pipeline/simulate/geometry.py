"""Parallel-beam scan geometry and the HU <-> linear attenuation mapping.

Conventions: the image is N x N pixels of ``pixel_mm``, centred on the rotation axis; pixel
(row j, column i) has its centre at ``x = (i - (N-1)/2) * pixel_mm``, ``y = (j - (N-1)/2) *
pixel_mm``. View ``a`` looks along angle ``theta_a = pi * a / n_views`` (half rotation, which is
complete for parallel beam); detector bin ``d`` sits at ``t = (d - (n_det-1)/2) * det_mm`` with
``t = x cos(theta) + y sin(theta)``. As on a scanner, the scan field of view is the circle
inscribed in the image: the detector spans its diameter, rays are sampled inside it, and what
lies outside (the image corners) is neither projected nor reconstructed -- callers set it to air
(the corners of a scanner image are padding anyway) and refuse objects that reach the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import SimulationError

#: linear attenuation of water at ~70 keV, per mm (NIST XCOM: 0.1929 cm^2/g x 1 g/cm^3)
MU_WATER_PER_MM = 0.01929


def hu_to_mu(hu: torch.Tensor | np.ndarray) -> torch.Tensor:
    """HU -> linear attenuation (1/mm), mu = mu_water (1 + HU/1000), negatives set to 0 (air).

    >>> mu = hu_to_mu([-1000.0, 0.0, 1000.0])
    >>> (mu / MU_WATER_PER_MM).tolist()  # air, water, twice water
    [0.0, 1.0, 2.0]
    >>> mu_to_hu(mu).tolist()
    [-1000.0, 0.0, 1000.0]
    """
    t = torch.as_tensor(hu, dtype=torch.float32)
    return torch.clamp(MU_WATER_PER_MM * (1.0 + t / 1000.0), min=0.0)


def mu_to_hu(mu: torch.Tensor) -> torch.Tensor:
    """Linear attenuation (1/mm) -> HU (inverse of :func:`hu_to_mu` where mu > 0)."""
    return 1000.0 * (mu / MU_WATER_PER_MM - 1.0)


@dataclass(frozen=True)
class ParallelGeometry:
    """A 2-D parallel-beam acquisition matched to an N x N reconstruction grid."""

    n_pixels: int
    pixel_mm: float
    n_views: int
    n_det: int
    det_mm: float

    @classmethod
    def for_image(
        cls, n_pixels: int, pixel_mm: float, n_views: int | None = None
    ) -> ParallelGeometry:
        """Default acquisition for an image: bins of one pixel covering the inscribed circle (odd
        count), and ``n_views`` ~ pi/2 x N (the angular sampling that avoids view aliasing)."""
        if n_pixels < 8:
            raise SimulationError(f"image must be at least 8 x 8 pixels, found {n_pixels}")
        if not pixel_mm > 0:
            raise SimulationError(f"pixel size must be positive, found {pixel_mm} mm")
        n_det = n_pixels + 2
        n_det += 1 - n_det % 2  # odd: the centre bin lies on the rotation axis
        views = n_views if n_views is not None else 2 * math.ceil(math.pi * n_pixels / 4)
        if views < 8:
            raise SimulationError(f"n_views must be >= 8, found {views}")
        return cls(int(n_pixels), float(pixel_mm), int(views), int(n_det), float(pixel_mm))

    @property
    def fov_mm(self) -> float:
        """Diameter of the scan field of view (the inscribed circle), mm."""
        return self.n_pixels * self.pixel_mm

    def fov_mask(self) -> torch.Tensor:
        """(N, N) bool, True for pixels whose centre lies inside the scan field of view."""
        c = self.pixel_centres_mm()
        r2 = c[None, :] ** 2 + c[:, None] ** 2
        return r2 <= (self.fov_mm / 2.0) ** 2

    def angles(self) -> torch.Tensor:
        """View angles in radians, shape (n_views,)."""
        return torch.arange(self.n_views, dtype=torch.float64) * (math.pi / self.n_views)

    def pixel_centres_mm(self) -> torch.Tensor:
        """Coordinates of pixel centres along one axis, shape (N,)."""
        n = self.n_pixels
        return (torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0) * self.pixel_mm

    def det_centres_mm(self) -> torch.Tensor:
        """Coordinates of detector-bin centres, shape (n_det,)."""
        d = self.n_det
        return (torch.arange(d, dtype=torch.float64) - (d - 1) / 2.0) * self.det_mm
