"""The engine wrapper of the non-learned denoisers (``ldct denoise --model bm3d|nlm``).

:class:`ClassicalDenoiser` has the :class:`~pipeline.infer.engine.Denoiser` interface that the
runner uses (plan, denoise_slices, name/version/sha256/precision), so BM3D and NLM go through
the same read -> denoise -> write path, manifest and derived-series provenance as the learned
models. The math lives in :mod:`pipeline.models.classical`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from pipeline.errors import ConfigError
from pipeline.infer.config import TilingConfig
from pipeline.infer.engine import BatchPlan, Denoiser
from pipeline.models.classical import (
    METHODS,
    ClassicalConfig,
    bm3d_module,
    config_sha256,
    estimate_noise_sd_hu,
    library_version,
)
from pipeline.records import TileFields
from pipeline.utils.shapes import check_shape

log = logging.getLogger(__name__)


class ClassicalDenoiser(Denoiser):
    """A non-learned slice denoiser with the :class:`Denoiser` interface used by the runner.

    No model, precision or tiling applies: slices are processed one at a time in float64 on the
    CPU. ``sigmas_hu`` keeps the noise SD used for each slice of the last volume.
    """

    learned = False  # no training envelope applies

    def __init__(self, name: str, cfg: ClassicalConfig | None = None) -> None:
        key = name.strip().lower()
        if key not in METHODS:
            raise ConfigError(f"unknown non-learned denoiser {name!r} (known: bm3d, nlm)")
        self.cfg = cfg or ClassicalConfig()
        if key == "bm3d":
            bm3d_module()  # fail before any work, with the install hint
        self._fn = METHODS[key]
        self.device = torch.device("cpu")
        self.dtype = torch.float64
        self.precision = "fp64"
        self.batch_size = 1
        self.tiling = TilingConfig()
        self._bpp, self._radius = 0.0, 0  # no network to probe; never tiled
        self.name = key
        self.version = library_version(key)
        self.sha256 = config_sha256(key, self.cfg)
        self.sigmas_hu: list[float] = []

    def sigma_for(self, hu: np.ndarray) -> float:
        """The noise SD used for one slice: the configured one or the blind estimate."""
        return self.cfg.sigma_hu if self.cfg.sigma_hu is not None else estimate_noise_sd_hu(hu)

    def denoise_slice(self, hu: np.ndarray) -> np.ndarray:
        """One ``(H, W)`` HU slice -> denoised float32 HU."""
        sigma = self.sigma_for(hu)
        self.sigmas_hu.append(sigma)
        return self._fn(hu, sigma, self.cfg)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{self.name} is not a network: use denoise_slices on HU arrays")

    def plan(self, height: int, width: int) -> BatchPlan:
        return BatchPlan(batch_size=1, tile=None)

    def tile_fields(self, plan: BatchPlan) -> TileFields:
        return TileFields.whole()

    def describe_model(self) -> str:
        how = (
            f"fixed noise SD {self.cfg.sigma_hu:g} HU"
            if self.cfg.sigma_hu is not None
            else "noise SD estimated per slice from the image"
        )
        return (
            f"non-learned denoiser {self.name} ({self.version}; {how}; config sha256 {self.sha256})"
        )

    def denoise_slices(
        self,
        hu: np.ndarray,
        out: np.ndarray | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        check_shape("hu", hu, ("Z", "Y", "X"))
        out = np.empty_like(hu, dtype=np.float32) if out is None else out
        self.sigmas_hu = []
        for z in range(hu.shape[0]):
            out[z] = self.denoise_slice(np.asarray(hu[z], dtype=np.float32))
            if on_batch is not None:
                on_batch(z, z + 1)
        if self.sigmas_hu:
            log.info(
                "%s: noise SD used per slice: median %.1f HU (range %.1f-%.1f) over %d slice(s)",
                self.name,
                float(np.median(self.sigmas_hu)),
                min(self.sigmas_hu),
                max(self.sigmas_hu),
                len(self.sigmas_hu),
            )
        return out
