"""Evaluation (``ldct evaluate``): the project's only PSNR/SSIM/RMSE/MAE, profiles, QA, artifacts.

Module map:

* ``metrics`` -- batched torch metrics; ``profiles`` -- the named conventions (window, data
  range, SSIM kernel, mask); ``batched`` -- many slices through many profiles, fast.
* ``body_mask`` -- where HU metrics and QA are measured; ``noise``, ``nps`` -- ROIs and TG-233
  noise/NPS; ``sharpness`` -- edge spread; ``task`` -- TTF and detectability from inserts;
  ``artifacts`` -- grid/seam detector; ``qa`` -- one patient's QA.
* ``pairing`` -- which series are compared; ``stats`` -- per-patient and cohort aggregation,
  paired tests; ``provenance`` -- what summary.json records; ``runner`` -- :func:`evaluate`.

See docs/evaluation.md.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.evaluate.artifacts import (
        DEFAULT_THRESHOLDS,
        ArtifactThresholds,
        flag_patient,
        score_slice,
    )
    from pipeline.evaluate.body_mask import body_mask_slice
    from pipeline.evaluate.metrics import mae, mse, psnr, rmse, ssim
    from pipeline.evaluate.noise import find_uniform_rois, radial_nps
    from pipeline.evaluate.pairing import EvalItem, pair_inputs
    from pipeline.evaluate.profiles import (
        DEFAULT_PROFILES,
        PROFILES,
        MetricProfile,
        compute_profile,
        get_profile,
    )
    from pipeline.evaluate.runner import evaluate, stored_padding_hu
    from pipeline.evaluate.sharpness import edge_spread
    from pipeline.evaluate.stats import paired_tests, per_patient

_EXPORTS: dict[str, tuple[str, ...]] = {
    "runner": ("evaluate", "stored_padding_hu"),
    "metrics": ("mae", "mse", "psnr", "rmse", "ssim"),
    "profiles": ("DEFAULT_PROFILES", "PROFILES", "MetricProfile", "compute_profile", "get_profile"),
    "artifacts": ("DEFAULT_THRESHOLDS", "ArtifactThresholds", "flag_patient", "score_slice"),
    "body_mask": ("body_mask_slice",),
    "pairing": ("EvalItem", "pair_inputs"),
    "noise": ("find_uniform_rois", "radial_nps"),
    "sharpness": ("edge_spread",),
    "stats": ("paired_tests", "per_patient"),
}

__all__ = [
    "DEFAULT_PROFILES",
    "DEFAULT_THRESHOLDS",
    "PROFILES",
    "ArtifactThresholds",
    "EvalItem",
    "MetricProfile",
    "body_mask_slice",
    "compute_profile",
    "edge_spread",
    "evaluate",
    "find_uniform_rois",
    "flag_patient",
    "get_profile",
    "mae",
    "mse",
    "pair_inputs",
    "paired_tests",
    "per_patient",
    "psnr",
    "radial_nps",
    "rmse",
    "score_slice",
    "ssim",
    "stored_padding_hu",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
