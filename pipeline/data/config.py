"""The ``data:`` section of a training config, and the one call that turns it into loaders.

``build_loaders(cfg, seed)`` = discover pairs (root or manifest) -> patient-level splits (file,
or fractions + ``split_seed``) -> decode each pair once (memory budget or disk cache) ->
seeded training loader of random patches + validation loader of whole slices.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator
from torch.utils.data import DataLoader

from pipeline.config import StrictModel
from pipeline.data.pairs import POSITION_TOL_MM, PairSpec, discover_pairs, load_pair
from pipeline.data.splits import Splits, assign, check_slice_leakage, load_splits, make_splits
from pipeline.data.transforms import AIR_THRESHOLD_HU
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


class DataConfig(StrictModel):
    """Where the pairs are, how to split them, and how to sample training patches."""

    root: Path | None = Field(None, description="dataset root in any supported layout")
    manifest: Path | None = Field(None, description="CSV/YAML pair manifest (instead of root)")
    simulated: Path | None = Field(
        None,
        description="generated training set (python -m pipeline.simulate.trainset), instead of "
        "root/manifest; its train/val entries are the splits",
    )
    simulated_target: Literal["full", "expected_full"] = Field(
        "full",
        description="training target of a generated set: the simulated full dose, or its "
        "expectation given the low dose (same optimum, none of the full dose's unpredictable "
        "noise; pipeline.simulate.trainset). Validation always scores against the full dose",
    )
    splits_file: Path | None = Field(None, description="split manifest (ldct dataset split)")
    strict_pairing: bool = Field(
        True,
        description="refuse the dataset if any patient cannot be paired; false: skip and log them",
    )
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    split_seed: int = 0
    patch_size: int = Field(64, ge=8)
    patches_per_slice: int = Field(4, ge=1)
    batch_size: int = Field(16, ge=1)
    augment: bool = Field(True, description="paired random rot90 + flip")
    air_threshold_hu: float = AIR_THRESHOLD_HU
    max_air_fraction: float = Field(0.9, ge=0.0, le=1.0, description="reject patches with more air")
    cache_dir: Path | None = Field(None, description="decoded HU cache (.npy memmaps) on disk")
    cache_budget_gb: float = Field(4.0, gt=0.0, description="in-memory budget without cache_dir")
    num_workers: int = Field(2, ge=0)
    position_tol_mm: float = Field(POSITION_TOL_MM, gt=0.0)
    require_same_frame_of_reference: bool = Field(
        True, description="refuse pairs whose FrameOfReferenceUIDs differ"
    )
    val_slice_stride: int = Field(1, ge=1, description="validate on every n-th slice")
    eval_batch_size: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        given = [k for k in ("root", "manifest", "simulated") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of root, manifest or simulated, not {' and '.join(given)}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be < 1")
        return self

    @property
    def source(self) -> Path:
        """The dataset root, manifest or generated set; ConfigError when none is set."""
        for src in (self.root, self.manifest, self.simulated):
            if src is not None:
                return src
        raise ConfigError("data.root, data.manifest or data.simulated must be set")


@dataclass
class DataLoaders:
    """What :func:`build_loaders` returns; ``val`` is None when the val split is empty."""

    train: DataLoader[dict[str, Any]]
    val: DataLoader[dict[str, Any]] | None
    splits: Splits
    pairs: dict[str, list[PairSpec]]  # per split name


def resolve_splits(cfg: DataConfig, pairs: list[PairSpec]) -> Splits:
    """The split manifest if given, else a seeded patient-level split of ``pairs``."""
    if cfg.splits_file is not None:
        return load_splits(cfg.splits_file)
    return make_splits(
        [p.patient for p in pairs],
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=cfg.split_seed,
    )


def build_loaders(
    cfg: DataConfig,
    seed: int = 0,
    *,
    pairs: list[PairSpec] | None = None,
    prior: Callable[[np.ndarray], np.ndarray] | None = None,
) -> DataLoaders:
    """Discover, split, decode once, and build the training and validation loaders.

    ``prior``: the model's whole-slice prior (EdgeUNet ``nlm_prior``), given to training patches.
    """
    from pipeline.data.cache import build_store

    if cfg.simulated is not None and pairs is None:
        return _simulated_loaders(cfg, seed, prior)
    specs = pairs if pairs is not None else discover_pairs(cfg.source, strict=cfg.strict_pairing)
    splits = resolve_splits(cfg, specs)
    by_split = assign(specs, splits)
    if not by_split["train"]:
        raise ConfigError("the training split is empty")
    loader = functools.partial(
        load_pair,
        tol_mm=cfg.position_tol_mm,
        require_same_frame_of_reference=cfg.require_same_frame_of_reference,
    )
    budget = int(cfg.cache_budget_gb * 1024**3)
    train_store = build_store(
        by_split["train"], cache_dir=cfg.cache_dir, budget_bytes=budget, loader=loader
    )
    train = _train_loader(train_store, cfg, seed, prior)
    val = None
    stores = {"train": train_store}
    if by_split["val"]:
        left = budget if train_store.on_disk else max(budget - train_store.nbytes, 0)
        val_store = stores["val"] = build_store(
            by_split["val"], cache_dir=cfg.cache_dir, budget_bytes=left, loader=loader
        )
        val = _val_loader(val_store, cfg)
    check_slice_leakage(
        {name: {i.name: i.sop_uids for i in st.infos} for name, st in stores.items()}
    )
    log.info(
        "data: %d train / %d val / %d test pair(s)",
        len(by_split["train"]),
        len(by_split["val"]),
        len(by_split["test"]),
    )
    return DataLoaders(train=train, val=val, splits=splits, pairs=by_split)


def _train_loader(
    store: Any, cfg: DataConfig, seed: int, prior: Callable[[np.ndarray], np.ndarray] | None
) -> Any:
    """The seeded patch loader of the training split (paired series or a generated set)."""
    from pipeline.data.datasets import build_train_loader

    return build_train_loader(
        store,
        patch_size=cfg.patch_size,
        batch_size=cfg.batch_size,
        seed=seed,
        num_workers=cfg.num_workers,
        patches_per_slice=cfg.patches_per_slice,
        augment=cfg.augment,
        air_threshold_hu=cfg.air_threshold_hu,
        max_air_fraction=cfg.max_air_fraction,
        prior=prior,
    )


def _val_loader(store: Any, cfg: DataConfig) -> Any:
    """The whole-slice loader of the validation split."""
    from pipeline.data.datasets import build_eval_loader

    return build_eval_loader(
        store,
        batch_size=cfg.eval_batch_size,
        num_workers=min(cfg.num_workers, 1),
        slice_stride=cfg.val_slice_stride,
    )


def _simulated_loaders(
    cfg: DataConfig, seed: int, prior: Callable[[np.ndarray], np.ndarray] | None
) -> DataLoaders:
    """Loaders over a generated training set: memmapped entries, the set's own train/val split."""
    from pipeline.data.simulated import simulated_pairs, simulated_store

    assert cfg.simulated is not None
    by_split, splits, _ = simulated_pairs(cfg.simulated)
    if not by_split["train"]:
        raise ConfigError(f"the generated set {cfg.simulated} has no training entries")
    train_store = simulated_store(by_split["train"], cfg.simulated_target)
    train = _train_loader(train_store, cfg, seed, prior)
    val = None
    if by_split["val"]:
        val = _val_loader(simulated_store(by_split["val"]), cfg)
    log.info(
        "data: generated set %s, %d train / %d val entries, training target %s",
        cfg.simulated,
        len(by_split["train"]),
        len(by_split["val"]),
        cfg.simulated_target,
    )
    return DataLoaders(train=train, val=val, splits=splits, pairs=by_split)
