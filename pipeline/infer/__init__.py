"""Batch denoising (``ldct denoise``): plan, read -> model -> write, publish atomically.

Module map:

* ``config`` -- :class:`DenoiseConfig` (defaults < configs/denoise.yaml < flags).
* ``plan`` -- discovered series, selection rules, shards and output paths.
* ``session`` -- one process: run its shard, write and merge the manifest (the shared denoise
  path of the CLI and ``ldct serve``); ``runner`` -- read/infer/write per series, overlapped.
* ``engine`` -- :class:`Denoiser` (model, precision, batching); ``tiling`` -- seam-free tiles;
  ``loader`` -- a Denoiser from a checkpoint or the bundled model; ``classical`` -- BM3D/NLM.
* ``stream`` -- slices into the staging folder while the model runs; ``publish`` -- verify and
  rename the finished series; ``manifest`` -- the per-series manifest.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.infer.classical import ClassicalDenoiser
    from pipeline.infer.config import DenoiseConfig, TilingConfig
    from pipeline.infer.engine import Denoiser
    from pipeline.infer.loader import load_denoiser, resolve_model_path
    from pipeline.infer.plan import Plan, PlanItem, build_plan
    from pipeline.infer.session import SessionSummary, denoise_planned, plan_inputs
    from pipeline.infer.tiling import tile_starts, tiled_apply

_EXPORTS: dict[str, tuple[str, ...]] = {
    "config": ("DenoiseConfig", "TilingConfig"),
    "plan": ("Plan", "PlanItem", "build_plan"),
    "session": ("SessionSummary", "denoise_planned", "plan_inputs"),
    "engine": ("Denoiser",),
    "tiling": ("tile_starts", "tiled_apply"),
    "loader": ("load_denoiser", "resolve_model_path"),
    "classical": ("ClassicalDenoiser",),
}

__all__ = [
    "ClassicalDenoiser",
    "DenoiseConfig",
    "Denoiser",
    "Plan",
    "PlanItem",
    "SessionSummary",
    "TilingConfig",
    "build_plan",
    "denoise_planned",
    "load_denoiser",
    "plan_inputs",
    "resolve_model_path",
    "tile_starts",
    "tiled_apply",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
