"""Deterministic, resumable, rank-sharded batches from a map-style dataset.

Each epoch draws one permutation of the dataset from ``(seed, epoch)`` (PyTorch's
``DistributedSampler``, also with one process, so the single-process global batch ``k`` is
exactly the union of the ranks' batches ``k``). Resuming at batch ``b`` of an epoch slices the
index list, so skipped samples are never loaded. Datasets whose samples are random (patches,
flips) must draw them from ``(seed, epoch, index)`` for a resumed run to see the same data:
when the dataset has ``set_epoch(epoch)`` it is called before each epoch, and with
``epoch_ids=True`` the indices are global sample ids ``epoch * len(dataset) + i`` (the
convention of :class:`pipeline.data.datasets.PairedPatchDataset`, fresh patches every epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from pipeline.errors import DatasetError
from pipeline.train.distributed import DistEnv


class _ListSampler(Sampler[int]):
    """Yields a fixed list of indices (one epoch's shard from a given offset)."""

    def __init__(self, indices: Sequence[int]) -> None:
        self.indices = list(indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class EpochBatches:
    """Batches of one rank: ``iterate(epoch, start_batch)`` yields the rest of that epoch."""

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        batch_size: int,
        env: DistEnv,
        seed: int,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        epoch_ids: bool = False,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.env = env
        self.seed = seed
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.epoch_ids = epoch_ids
        n = len(dataset)  # type: ignore[arg-type]
        per_rank = n // env.world_size
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch < 1:
            raise DatasetError(
                f"training set too small: {n} samples for a per-rank batch of {batch_size} "
                f"on {env.world_size} process(es)"
            )

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's sample indices for ``epoch`` (full batches only)."""
        sampler: DistributedSampler[Any] = DistributedSampler(
            self.dataset,
            num_replicas=self.env.world_size,
            rank=self.env.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        idx = list(sampler)[: self.batches_per_epoch * self.batch_size]
        if self.epoch_ids:
            n = len(self.dataset)  # type: ignore[arg-type]
            idx = [epoch * n + i for i in idx]
        return idx

    def iterate(self, epoch: int, start_batch: int = 0) -> Iterator[Any]:
        """Batches ``start_batch ..`` of ``epoch`` for this rank."""
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise DatasetError(
                f"resume position batch {start_batch} outside the epoch "
                f"(0..{self.batches_per_epoch}); did the dataset change?"
            )
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        indices = self.epoch_indices(epoch)[start_batch * self.batch_size :]
        gen = torch.Generator()
        gen.manual_seed(self.seed * 1_000_003 + epoch * 7919 + start_batch)
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=_ListSampler(indices),
            num_workers=self.num_workers,
            drop_last=True,
            collate_fn=self.collate_fn,
            generator=gen,
            persistent_workers=False,
        )
        yield from loader
