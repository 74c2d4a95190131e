"""Datasets and loaders for paired training (random patches) and evaluation (whole slices).

Training samples are addressed by a *global sample id* ``epoch * len(dataset) + i``: the sampler
(in the main process) shuffles ids with a generator seeded by ``(seed, epoch)``, and the dataset
re-seeds the MONAI transform chain from ``(seed, sample id)`` for each sample. So:

* the same seed gives the same batches, for any ``num_workers``;
* each sample id goes to exactly one worker, and no randomness comes from per-worker RNG state,
  so workers never duplicate samples (the classic forked-NumPy-RNG bug cannot occur);
* every epoch draws fresh patches.

Items are dicts: ``low``/``full`` float32 tensors (1, H, W) in the model range, ``patient`` (str),
``pair`` (str, pair name), ``slice`` (int, index in the pair), plus patch corner ``y``/``x``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.data.cache import DEFAULT_BUDGET_BYTES, PairStore, build_store
from pipeline.data.pairs import Pair, PairSpec
from pipeline.data.transforms import (
    AIR_THRESHOLD_HU,
    KEYS,
    HUToModeld,
    RandPairedFlipRot90d,
    RandPairedPatchd,
)
from pipeline.errors import DatasetError

log = logging.getLogger(__name__)


def _slice_index(store: PairStore, stride: int = 1) -> np.ndarray:
    """(N, 2) int array of (pair index, slice index) over all stored pairs."""
    rows = [(i, z) for i, info in enumerate(store.infos) for z in range(0, info.shape[0], stride)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def _sample_seed(seed: int, sample_id: int) -> int:
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, sample_id]).generate_state(1)[0])


class PairedPatchDataset(Dataset[dict[str, Any]]):
    """``patches_per_slice`` random paired patches per stored slice (one epoch = len(self))."""

    def __init__(
        self,
        store: PairStore,
        *,
        patch_size: int = 64,
        patches_per_slice: int = 4,
        seed: int = 0,
        augment: bool = True,
        air_threshold_hu: float = AIR_THRESHOLD_HU,
        max_air_fraction: float = 0.9,
        max_tries: int = 10,
        prior: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if patches_per_slice < 1:
            raise DatasetError(f"patches_per_slice must be >= 1, found {patches_per_slice}")
        smallest = min((info.shape[1:] for info in store.infos), key=lambda s: s[0] * s[1])
        if patch_size > min(smallest):
            raise DatasetError(
                f"patch_size {patch_size} is larger than the smallest slice "
                f"({smallest[0]}x{smallest[1]}) of the training pairs"
            )
        self.store = store
        self.index = _slice_index(store)
        self.patches_per_slice = int(patches_per_slice)
        self.seed = int(seed)
        self.priors = _whole_slice_priors(store, self.index, prior) if prior else None
        keys = (*KEYS, "prior") if prior else KEYS
        chain: list[Any] = [
            RandPairedPatchd(
                keys,
                patch_size,
                air_threshold_hu=air_threshold_hu,
                max_air_fraction=max_air_fraction,
                max_tries=max_tries,
            )
        ]
        if augment:
            chain.append(RandPairedFlipRot90d(keys))
        chain.append(HUToModeld(keys))
        self.transform = Compose(chain)

    def __len__(self) -> int:
        return len(self.index) * self.patches_per_slice

    def __getitem__(self, sample_id: int) -> dict[str, Any]:
        n = len(self)
        i = int(sample_id) % n
        pair_i, z = (int(v) for v in self.index[i // self.patches_per_slice])
        low, full = self.store.slice(pair_i, z)
        self.transform.set_random_state(seed=_sample_seed(self.seed, int(sample_id)))
        info = self.store.infos[pair_i]
        data = {"low": low, "full": full}
        if self.priors is not None:
            data["prior"] = self.priors[(pair_i, z)]
        item = self.transform(data)
        if self.priors is not None:  # the model's second input channel (EdgeUNet nlm_prior)
            item["low"] = torch.cat([item["low"], item.pop("prior")], dim=0)
        item.update(patient=info.patient, pair=info.name, slice=z, sample=int(sample_id))
        return item


def _whole_slice_priors(
    store: PairStore, index: np.ndarray, prior: Callable[[np.ndarray], np.ndarray]
) -> dict[tuple[int, int], np.ndarray]:
    """``prior(low)`` of every indexed whole slice (HU), computed once before training.

    Patches are cut from it at the same place as from the low dose, so a patch carries the
    whole slice's prior, as in inference (EdgeUNet ``nlm_prior``).
    """
    t0 = time.perf_counter()
    out: dict[tuple[int, int], np.ndarray] = {}
    for pair_i, z in index:
        low, _ = store.slice(int(pair_i), int(z))
        out[(int(pair_i), int(z))] = np.asarray(prior(np.asarray(low)), dtype=np.float32)
    log.info("data: the prior of %d training slices in %.0f s", len(out), time.perf_counter() - t0)
    return out


class EpochShuffleSampler(Sampler[int]):
    """Yields global sample ids ``epoch * n + perm[i]``, perm seeded by ``(seed, epoch)``.

    The epoch advances on each ``__iter__`` (or set it with :meth:`set_epoch`, e.g. on resume).
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, start_epoch: int = 0) -> None:
        self.n, self.seed, self.shuffle, self.epoch = int(n), int(seed), shuffle, int(start_epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1
        if self.shuffle:
            g = torch.Generator().manual_seed(_sample_seed(self.seed, epoch))
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        base = epoch * self.n
        return iter([base + i for i in perm])


class PairedSliceDataset(Dataset[dict[str, Any]]):
    """Whole slices in order (validation/test): ``low``/``full`` (1, Y, X) model range."""

    def __init__(self, store: PairStore, *, slice_stride: int = 1) -> None:
        self.store = store
        self.index = _slice_index(store, max(1, int(slice_stride)))
        self.to_model = HUToModeld(KEYS)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pair_i, z = (int(v) for v in self.index[i])
        low, full = self.store.slice(pair_i, z)
        info = self.store.infos[pair_i]
        item: dict[str, Any] = {
            str(k): v for k, v in self.to_model({"low": low, "full": full}).items()
        }
        item.update(patient=info.patient, pair=info.name, slice=z, position_mm=info.positions_mm[z])
        return item

    def batches_by_pair(self, batch_size: int) -> list[list[int]]:
        """Index batches that never mix pairs (pairs may differ in image size)."""
        out: list[list[int]] = []
        pair_col = self.index[:, 0]
        for p in np.unique(pair_col):
            idx = np.flatnonzero(pair_col == p).tolist()
            out += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
        return out


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers only slice and copy; leave the cores to the model


def _as_store(
    pairs: Sequence[PairSpec | Pair] | PairStore, cache_dir: Any, cache_budget_gb: float
) -> PairStore:
    if isinstance(pairs, PairStore):
        return pairs
    return build_store(pairs, cache_dir=cache_dir, budget_bytes=int(cache_budget_gb * 1024**3))


def build_train_loader(
    pairs: Sequence[PairSpec | Pair] | PairStore,
    *,
    patch_size: int = 64,
    batch_size: int = 16,
    seed: int = 0,
    num_workers: int = 0,
    patches_per_slice: int = 4,
    augment: bool = True,
    air_threshold_hu: float = AIR_THRESHOLD_HU,
    max_air_fraction: float = 0.9,
    cache_dir: str | None = None,
    cache_budget_gb: float = DEFAULT_BUDGET_BYTES / 1024**3,
    drop_last: bool = True,
    start_epoch: int = 0,
    prior: Callable[[np.ndarray], np.ndarray] | None = None,
) -> DataLoader[dict[str, Any]]:
    """Shuffled, seeded loader of random paired patches: batches ``{"low", "full"}`` (B, 1, P, P).

    Each ``iter(loader)`` is one epoch of ``patches_per_slice`` patches per training slice.
    ``prior`` (HU slice -> HU slice, e.g. the model's ``prior_hu``): ``low`` then carries the
    whole slice's prior as a second channel, (B, 2, P, P).
    """
    store = _as_store(pairs, cache_dir, cache_budget_gb)
    ds = PairedPatchDataset(
        store,
        patch_size=patch_size,
        patches_per_slice=patches_per_slice,
        seed=seed,
        augment=augment,
        air_threshold_hu=air_threshold_hu,
        max_air_fraction=max_air_fraction,
        prior=prior,
    )
    if drop_last and len(ds) < batch_size:
        raise DatasetError(
            f"only {len(ds)} training patches per epoch, fewer than batch_size {batch_size}"
        )
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=EpochShuffleSampler(len(ds), seed=seed, start_epoch=start_epoch),
        num_workers=num_workers,
        drop_last=drop_last,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
        pin_memory=False,
    )


def build_eval_loader(
    pairs: Sequence[PairSpec | Pair] | PairStore,
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    slice_stride: int = 1,
    cache_dir: str | None = None,
    cache_budget_gb: float = DEFAULT_BUDGET_BYTES / 1024**3,
) -> DataLoader[dict[str, Any]]:
    """Ordered loader of whole slices (every ``slice_stride``-th), batches never mix pairs."""
    store = _as_store(pairs, cache_dir, cache_budget_gb)
    ds = PairedSliceDataset(store, slice_stride=slice_stride)
    return DataLoader(
        ds,
        batch_sampler=ds.batches_by_pair(max(1, int(batch_size))),
        num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers > 0 else None,
    )
