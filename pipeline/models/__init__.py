"""Denoisers built by name from plain config data, their checkpoints and inference precision.

Module map:

* ``registry`` -- build any model by name (:func:`build_model`); ``spec`` -- a registered
  model's description; ``_builtin`` -- the built-in zoo, registered on first use.
* ``drle`` (DRL-E, the edge-aware dilated residual network), ``fused`` (its inference form),
  ``redcnn``, ``monai_nets`` (MONAI backbones), ``sobel`` (the fixed edge layer).
* ``checkpoint`` -- the checkpoint format shared by training and denoising.
* ``precision``, ``capability`` -- fp32/bf16 choice and what this machine can run.
* ``envelope`` -- the training envelope and the review guardrail; ``classical`` -- BM3D/NLM
  baselines; ``flops`` -- parameter and FLOP counts.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.models.checkpoint import load_checkpoint, model_hash, save_checkpoint
    from pipeline.models.classical import ClassicalConfig, is_classical
    from pipeline.models.drle import DRLE
    from pipeline.models.envelope import SeriesFacts, TrainingEnvelope, review_reasons
    from pipeline.models.flops import count_parameters, gflops_per_slice
    from pipeline.models.precision import (
        precision_label,
        predict,
        prepare_for_inference,
        resolve_precision,
    )
    from pipeline.models.redcnn import REDCNN
    from pipeline.models.registry import (
        DEFAULT_MODEL,
        ModelConfig,
        build_from_config,
        build_model,
        list_models,
        model_names,
        resolve_params,
    )
    from pipeline.models.sobel import SobelEdges, sobel_edges
    from pipeline.models.spec import ModelSpec

_EXPORTS: dict[str, tuple[str, ...]] = {
    "registry": (
        "DEFAULT_MODEL",
        "ModelConfig",
        "build_from_config",
        "build_model",
        "list_models",
        "model_names",
        "resolve_params",
    ),
    "spec": ("ModelSpec",),
    "drle": ("DRLE",),
    "redcnn": ("REDCNN",),
    "sobel": ("SobelEdges", "sobel_edges"),
    "checkpoint": ("load_checkpoint", "model_hash", "save_checkpoint"),
    "precision": ("precision_label", "predict", "prepare_for_inference", "resolve_precision"),
    "envelope": ("SeriesFacts", "TrainingEnvelope", "review_reasons"),
    "classical": ("ClassicalConfig", "is_classical"),
    "flops": ("count_parameters", "gflops_per_slice"),
}

__all__ = [
    "DEFAULT_MODEL",
    "DRLE",
    "REDCNN",
    "ClassicalConfig",
    "ModelConfig",
    "ModelSpec",
    "SeriesFacts",
    "SobelEdges",
    "TrainingEnvelope",
    "build_from_config",
    "build_model",
    "count_parameters",
    "gflops_per_slice",
    "is_classical",
    "list_models",
    "load_checkpoint",
    "model_hash",
    "model_names",
    "precision_label",
    "predict",
    "prepare_for_inference",
    "resolve_params",
    "resolve_precision",
    "review_reasons",
    "save_checkpoint",
    "sobel_edges",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
