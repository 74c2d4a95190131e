"""The :class:`Denoiser`: a model, its precision and the batching/tiling of slices.

Slices go HU -> model range (:mod:`pipeline.intensity`) -> model -> HU, in batches of whole
slices. Only when one slice does not fit the memory budget are slices split into overlapping tiles
(:mod:`pipeline.infer.tiling`: tiles overlap by twice the model's measured receptive radius and
are Gaussian-blended over their cores), so there are no seams and, usually, no tiling at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.infer.config import TilingConfig
from pipeline.infer.tiling import tiled_apply
from pipeline.intensity import hu_to_model, model_to_hu
from pipeline.models.envelope import TrainingEnvelope
from pipeline.records import TileFields
from pipeline.utils.shapes import check_shape

log = logging.getLogger(__name__)

#: Tiles are multiples of this (keeps strided/pooling models aligned).
TILE_MULTIPLE = 16
#: Activation memory is estimated as this many times the largest single layer output
#: (measured peak RSS of DRL-E-64 on 512x512: ~4.8x in fp32, ~5x in bf16 with 2-byte outputs).
PEAK_FACTOR = 5.0


@dataclass(frozen=True)
class BatchPlan:
    """How slices of one size are pushed through the model."""

    batch_size: int  # slices per forward pass, or tiles (of one slice) when tiling
    tile: int | None  # tile side in pixels, None = whole slices


def estimate_bytes_per_pixel(
    model: nn.Module, device: torch.device, dtype: torch.dtype = torch.float32, probe: int = 32
) -> float:
    """Activation bytes per input pixel, from one probe forward pass (largest layer x factor).

    A heuristic: in inference mode a layer's output is freed once consumed, so the peak is a few
    layer outputs alive at once (skip connections keep some longer); :data:`PEAK_FACTOR` covers it.
    """
    largest = 0

    def hook(_m: nn.Module, _i: object, out: object) -> None:
        nonlocal largest
        if isinstance(out, torch.Tensor):
            largest = max(largest, out.numel() * out.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 1, probe, probe, device=device))
    finally:
        for h in handles:
            h.remove()
    largest = max(largest, probe * probe * 4)
    scale = torch.empty((), dtype=dtype).element_size() / 4.0  # probe ran in fp32
    return PEAK_FACTOR * largest * scale / (probe * probe)


def receptive_radius(model: nn.Module, device: torch.device, probe: int = 129) -> int:
    """Pixels from an output pixel to the farthest input pixel that changes it (capped).

    Measured by perturbing the centre of a random probe image and finding the farthest output
    pixel that moved. Tiles overlap by at least twice this, so every pixel gets a tile in which
    it sees its whole context (no seams); the Gaussian blend hides the rest.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, probe, probe, generator=gen).to(device)
    x2 = x.clone()
    c = probe // 2
    x2[0, 0, c, c] += 1.0
    with torch.inference_mode():
        diff = (model(x2) - model(x)).abs()[0, 0]
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    if ys.numel() == 0:
        return 0
    return int(max((ys - c).abs().max().item(), (xs - c).abs().max().item()))


def plan_batches(
    height: int, width: int, *, batch_size: int, bytes_per_pixel: float, tiling: TilingConfig
) -> BatchPlan:
    """Choose whole-slice batches when they fit the budget, else the largest fitting tile."""
    budget = tiling.memory_budget_mb * 2**20
    forced = tiling.max_tile
    if forced and (height > forced or width > forced):
        side = max(TILE_MULTIPLE, forced)
        fit = int(budget // (side * side * bytes_per_pixel))
        return BatchPlan(batch_size=max(1, min(batch_size, fit)), tile=side)
    per_slice = height * width * bytes_per_pixel
    if per_slice <= budget:
        return BatchPlan(batch_size=max(1, min(batch_size, int(budget // per_slice))), tile=None)
    side = int(math.sqrt(budget / bytes_per_pixel)) // TILE_MULTIPLE * TILE_MULTIPLE
    return BatchPlan(batch_size=1, tile=max(TILE_MULTIPLE, side))


class Denoiser:
    """Denoise HU volumes slice by slice with one model.

    ``dtype`` is the compute precision (``torch.float32`` or ``torch.bfloat16``); the model is
    run through :func:`pipeline.models.precision.prepare_for_inference`/``predict`` (the fused
    fast path for DRL-E), inputs and outputs stay fp32. ``name``/``version``/``sha256``
    identify the model in derived series and manifests.
    """

    #: the model's training envelope (``extra["training_envelope"]``), None when not recorded
    envelope: TrainingEnvelope | None = None
    #: False for non-learned denoisers (no training envelope applies)
    learned: bool = True
    #: VGG16 weights of the training loss as the checkpoint records them (``extra["vgg_weights"]``:
    #: "imagenet", "random (untrained)", "file", "none"); None = not recorded
    vgg_weights: str | None = None

    def __init__(
        self,
        model: nn.Module,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 8,
        tiling: TilingConfig | None = None,
        name: str = "model",
        version: str = "",
        sha256: str = "",
    ) -> None:
        from pipeline.models.precision import precision_label, prepare_for_inference

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dtype = dtype
        self.fast = prepare_for_inference(self.model, dtype).to(self.device)
        self.precision = precision_label(dtype)
        self.batch_size = batch_size
        self.tiling = tiling or TilingConfig()
        self.name = name
        self.version = version
        self.sha256 = sha256
        self._bpp: float | None = None
        self._radius: int | None = None

    def describe_model(self) -> str:
        """What derived series record as their source model (non-learned ones say so)."""
        return (
            f"model {self.name} (version {self.version or 'unversioned'}, "
            f"weights sha256 {self.sha256})"
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) model range -> same, fp32, through the fast path."""
        from pipeline.models.precision import predict

        return predict(self.fast, x, self.dtype)

    @property
    def bytes_per_pixel(self) -> float:
        if self._bpp is None:
            self._bpp = estimate_bytes_per_pixel(self.model, self.device, self.dtype)
        return self._bpp

    @property
    def radius(self) -> int:
        if self._radius is None:
            self._radius = receptive_radius(self.model, self.device)
        return self._radius

    def margin_for(self, tile: int) -> int:
        """Pixels each tile border is discarded: the receptive radius + 1, at least overlap/2."""
        return max(self.radius + 1, math.ceil(self.tiling.overlap * tile / 2))

    def plan(self, height: int, width: int) -> BatchPlan:
        """The batch/tile plan for slices of this size."""
        return plan_batches(
            height,
            width,
            batch_size=self.batch_size,
            bytes_per_pixel=self.bytes_per_pixel,
            tiling=self.tiling,
        )

    def tile_geometry(self, plan: BatchPlan) -> tuple[int, int] | None:
        """``(tile, margin)`` in pixels actually used for ``plan``, or None for whole slices."""
        if plan.tile is None:
            return None
        tile = max(plan.tile, 4 * (self.radius + 1))
        return tile, self.margin_for(tile)

    def tile_fields(self, plan: BatchPlan) -> TileFields:
        """How ``plan`` covers a slice, as the manifest records it (the evaluator reads it)."""
        geometry = self.tile_geometry(plan)
        if geometry is None:
            return TileFields.whole()
        tile, margin = geometry
        return TileFields.tiles(tile, margin)

    def _forward(self, x: torch.Tensor, plan: BatchPlan) -> torch.Tensor:
        """(B, 1, H, W) model range -> same, whole or tiled, float32."""
        geometry = self.tile_geometry(plan)
        if geometry is None:
            return self.predict(x)
        tile, margin = geometry
        attach = getattr(self.model, "attach_prior", None)
        if attach is not None:
            x = attach(x)  # a prior from the whole slice (EdgeUNet nlm_prior), then tiles
        return tiled_apply(
            x, self.predict, tile=tile, margin=margin, batch_size=max(1, plan.batch_size)
        )

    def denoise_slices(
        self,
        hu: np.ndarray,
        out: np.ndarray | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Denoise a (Z, Y, X) HU array slice-wise; writes into ``out`` (may be ``hu`` itself).

        Writing into the input (``out=hu``) keeps one volume in memory per series in flight.
        ``on_batch(start, stop)`` is called once ``out[start:stop]`` holds its final values
        (lets a writer stream those slices while the next batch runs).
        """
        check_shape("hu", hu, ("Z", "Y", "X"))
        out = np.empty_like(hu, dtype=np.float32) if out is None else out
        z, h, w = hu.shape
        plan = self.plan(h, w)
        step = plan.batch_size if plan.tile is None else 1  # tiled: tiles of one slice batched
        for start in range(0, z, step):
            stop = min(z, start + step)
            x = torch.from_numpy(np.ascontiguousarray(hu[start:stop], dtype=np.float32))
            x = hu_to_model(x[:, None].to(self.device))
            y = self._forward(x, plan)
            check_shape("model output", y, (stop - start, 1, h, w))
            out[start:stop] = model_to_hu(y[:, 0]).cpu().numpy()
            if on_batch is not None:
                on_batch(start, stop)
        return out
