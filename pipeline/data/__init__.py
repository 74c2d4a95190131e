"""Paired low/full-dose data: finding pairs, checking them, splitting, and the MONAI loaders.

Module map:

* ``spec`` -- :class:`PairSpec`, a pair before it is read; ``pairs`` -- finding, loading and
  validating pairs; ``layouts`` -- the folder layouts users have; ``manifest`` -- pair tables.
* ``quality`` -- the dataset soundness check (``ldct dataset check``).
* ``splits`` -- seeded patient-level train/val/test splits, leak-checked.
* ``cache`` -- decode every pair once; ``transforms`` -- paired MONAI dict transforms;
  ``datasets`` -- patch and whole-slice datasets and loaders; ``simulated`` -- pairs from a
  generated training set; ``config`` -- the ``data:`` config section and its loaders.

Intensity mappings (HU <-> model range, windows) live in the core module
:mod:`pipeline.intensity`.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.data.cache import build_store
    from pipeline.data.config import DataConfig, build_loaders
    from pipeline.data.datasets import PairedPatchDataset, build_eval_loader, build_train_loader
    from pipeline.data.layouts import scan_pairs
    from pipeline.data.manifest import read_manifest, write_manifest
    from pipeline.data.pairs import (
        Pair,
        discover_pairs,
        load_pair,
        match_slices,
        pair_volumes,
        slice_positions_mm,
    )
    from pipeline.data.quality import DatasetReport, check_dataset
    from pipeline.data.spec import PairSpec
    from pipeline.data.splits import (
        Splits,
        check_leakage,
        explicit_splits,
        load_splits,
        make_splits,
        save_splits,
    )

_EXPORTS: dict[str, tuple[str, ...]] = {
    "spec": ("PairSpec",),
    "pairs": (
        "Pair",
        "discover_pairs",
        "load_pair",
        "match_slices",
        "pair_volumes",
        "slice_positions_mm",
    ),
    "layouts": ("scan_pairs",),
    "manifest": ("read_manifest", "write_manifest"),
    "quality": ("DatasetReport", "check_dataset"),
    "splits": (
        "Splits",
        "check_leakage",
        "explicit_splits",
        "load_splits",
        "make_splits",
        "save_splits",
    ),
    "cache": ("build_store",),
    "datasets": ("PairedPatchDataset", "build_eval_loader", "build_train_loader"),
    "config": ("DataConfig", "build_loaders"),
}

__all__ = [
    "DataConfig",
    "DatasetReport",
    "Pair",
    "PairSpec",
    "PairedPatchDataset",
    "Splits",
    "build_eval_loader",
    "build_loaders",
    "build_store",
    "build_train_loader",
    "check_dataset",
    "check_leakage",
    "discover_pairs",
    "explicit_splits",
    "load_pair",
    "load_splits",
    "make_splits",
    "match_slices",
    "pair_volumes",
    "read_manifest",
    "save_splits",
    "scan_pairs",
    "slice_positions_mm",
    "write_manifest",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
