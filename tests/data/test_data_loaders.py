"""Training/eval loaders: exact round trip, paired draws, determinism, workers, air, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.data.cache import build_store
from pipeline.data.datasets import PairedPatchDataset, build_eval_loader, build_train_loader
from pipeline.data.pairs import PairSpec, pair_volumes
from pipeline.data.transforms import air_fraction
from pipeline.errors import DatasetError
from pipeline.intensity import model_to_hu

# float32 quantum of the model range at 4096 HU: |HU| <= 4096 -> spacing <= 4096 * 2**-23
HU_ATOL = 4096.0 * 2.0**-22


@pytest.fixture
def pairs(volume_pair):
    out = []
    for seed in range(3):
        low, full = volume_pair(n_slices=4, size=64, seed=seed)
        out.append(pair_volumes(PairSpec(f"P{seed}", None, None, layout="memory"), low, full))  # type: ignore[arg-type]
    return out


def _undo(patch: np.ndarray, k: int, flipped: bool) -> np.ndarray:
    if flipped:
        patch = patch[..., ::-1]
    return np.rot90(patch, -k, axes=(-2, -1))


def _epoch(loader) -> list[dict]:
    return list(loader)


def test_patch_round_trip_matches_source_hu(pairs):
    by_name = {p.spec.name: p for p in pairs}
    loader = build_train_loader(pairs, patch_size=32, batch_size=8, seed=3)
    batch = next(iter(loader))
    assert batch["low"].shape == batch["full"].shape == (8, 1, 32, 32)
    assert batch["low"].dtype == torch.float32
    for b in range(8):
        pair = by_name[batch["pair"][b]]
        z, y, x = int(batch["slice"][b]), int(batch["y"][b]), int(batch["x"][b])
        k, flipped = int(batch["rot90"][b]), bool(batch["flipped"][b])
        for key, vol in (("low", pair.low), ("full", pair.full)):
            hu = model_to_hu(batch[key][b, 0].double().numpy())
            src = vol.hu[z, y : y + 32, x : x + 32]
            np.testing.assert_allclose(_undo(hu, k, flipped), src, rtol=0, atol=HU_ATOL)


def test_flips_and_rotations_are_shared_by_both_images(volume_pair):
    low, full = volume_pair(n_slices=2, size=64, seed=5)
    low = low.with_hu(full.hu + 7.0)  # pointwise relation survives only a shared transform
    pair = pair_volumes(PairSpec("S", None, None), low, full)  # type: ignore[arg-type]
    batch = next(
        iter(build_train_loader([pair], patch_size=16, batch_size=16, seed=0, patches_per_slice=8))
    )
    diff = model_to_hu(batch["low"].double()) - model_to_hu(batch["full"].double())
    assert torch.allclose(diff, torch.full_like(diff, 7.0), atol=1e-3)
    assert len(set(batch["rot90"].tolist())) > 1 and len(set(batch["flipped"].tolist())) == 2


def test_same_seed_same_batches_other_seed_differs(pairs):
    a = _epoch(build_train_loader(pairs, patch_size=16, batch_size=4, seed=11))
    b = _epoch(build_train_loader(pairs, patch_size=16, batch_size=4, seed=11))
    c = _epoch(build_train_loader(pairs, patch_size=16, batch_size=4, seed=12))
    assert len(a) == 3 * 4 * 4 // 4
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["low"], y["low"]) and torch.equal(x["full"], y["full"])
        assert x["pair"] == y["pair"]
    assert not all(torch.equal(x["low"], z["low"]) for x, z in zip(a, c, strict=True))


def test_epochs_differ_and_set_epoch_replays(pairs):
    loader = build_train_loader(pairs, patch_size=16, batch_size=4, seed=1)
    e0, e1 = _epoch(loader), _epoch(loader)
    assert not torch.equal(e0[0]["low"], e1[0]["low"])
    loader.sampler.set_epoch(1)  # type: ignore[attr-defined]
    again = _epoch(loader)
    assert all(torch.equal(x["low"], y["low"]) for x, y in zip(e1, again, strict=True))


def test_workers_give_same_batches_without_duplicates(pairs):
    ref = _epoch(build_train_loader(pairs, patch_size=16, batch_size=4, seed=7, num_workers=0))
    par = _epoch(build_train_loader(pairs, patch_size=16, batch_size=4, seed=7, num_workers=2))
    assert len(ref) == len(par)
    for x, y in zip(ref, par, strict=True):
        assert torch.equal(x["low"], y["low"]) and x["sample"].tolist() == y["sample"].tolist()
    samples = torch.cat([b["sample"] for b in par]).tolist()
    assert len(samples) == len(set(samples))
    keys = {
        (p, int(s), int(y), int(x))
        for b in par
        for p, s, y, x in zip(b["pair"], b["slice"], b["y"], b["x"], strict=True)
    }
    assert len(keys) > 0.9 * len(samples)  # distinct patches, not one draw repeated per worker


def test_air_patches_are_rejected(volume_pair):
    low, full = volume_pair(n_slices=2, size=128, seed=2)
    hu = full.hu.copy()
    hu[:, :, :] = -1000.0
    hu[:, 40:80, 40:80] = 40.0  # small body: a 32px patch at random is mostly air
    pair = pair_volumes(PairSpec("A", None, None), low.with_hu(hu), full.with_hu(hu))  # type: ignore[arg-type]
    store = build_store([pair])
    strict = PairedPatchDataset(
        store, patch_size=32, patches_per_slice=64, max_air_fraction=0.5, max_tries=50
    )
    loose = PairedPatchDataset(store, patch_size=32, patches_per_slice=64, max_air_fraction=1.0)
    fr_strict = [air_fraction(model_to_hu(strict[i]["full"].numpy())) for i in range(64)]
    fr_loose = [air_fraction(model_to_hu(loose[i]["full"].numpy())) for i in range(64)]
    assert np.mean(np.array(fr_strict) <= 0.5) > 0.95
    assert np.mean(np.array(fr_loose) > 0.5) > 0.4  # oracle: without rejection most are air


def test_eval_loader_iterates_whole_slices_in_order(pairs, volume_pair):
    low, full = volume_pair(n_slices=3, size=48, seed=9)
    other = pair_volumes(PairSpec("Q", None, None), low, full)  # type: ignore[arg-type]
    loader = build_eval_loader([*pairs, other], batch_size=3)
    seen = []
    for batch in loader:
        assert len(set(batch["pair"])) == 1  # never mixes pairs (sizes differ)
        for b in range(batch["low"].shape[0]):
            seen.append((batch["pair"][b], int(batch["slice"][b])))
            src = {p.spec.name: p for p in [*pairs, other]}[batch["pair"][b]]
            hu = model_to_hu(batch["full"][b, 0].double().numpy())
            np.testing.assert_allclose(hu, src.full.hu[int(batch["slice"][b])], atol=HU_ATOL)
    assert seen == [(p.spec.name, z) for p in [*pairs, other] for z in range(p.n_slices)]


def test_disk_cache_matches_memory_and_is_reused(pairs, tmp_path):
    mem = _epoch(build_train_loader(pairs, patch_size=16, batch_size=4, seed=5))
    disk_loader = build_train_loader(
        pairs, patch_size=16, batch_size=4, seed=5, cache_dir=str(tmp_path)
    )
    assert disk_loader.dataset.store.on_disk  # type: ignore[attr-defined]
    disk = _epoch(disk_loader)
    assert all(torch.equal(x["low"], y["low"]) for x, y in zip(mem, disk, strict=True))
    entries = sorted(tmp_path.iterdir())
    assert len(entries) == 3
    mtimes = [(e / "low.npy").stat().st_mtime_ns for e in entries]
    build_store(pairs, cache_dir=tmp_path)  # second build reuses the entries
    assert [(e / "low.npy").stat().st_mtime_ns for e in entries] == mtimes


def test_memory_budget_is_enforced(pairs):
    with pytest.raises(DatasetError, match=r"set data\.cache_dir"):
        build_store(pairs, budget_bytes=100_000)


def test_patch_larger_than_slice_is_refused(pairs):
    with pytest.raises(
        DatasetError, match=r"patch_size 128 is larger than the smallest slice \(64x64"
    ):
        build_train_loader(pairs, patch_size=128, batch_size=2, seed=0)


def test_a_prior_rides_as_the_second_channel_cut_from_the_whole_slice(pairs):
    """The prior is computed on the whole slice, then cut and flipped with the low dose."""
    by_name = {p.spec.name: p for p in pairs}
    calls = []

    def prior(hu: np.ndarray) -> np.ndarray:  # position-dependent: a crop of a patch would differ
        calls.append(hu.shape)
        return hu + np.arange(hu.shape[0], dtype=np.float32)[:, None] * 3.0

    loader = build_train_loader(pairs, patch_size=32, batch_size=8, seed=3, prior=prior)
    assert calls and all(s == (64, 64) for s in calls)  # whole slices, once each
    assert len(calls) == sum(p.low.hu.shape[0] for p in pairs)
    batch = next(iter(loader))
    assert batch["low"].shape == (8, 2, 32, 32) and batch["full"].shape == (8, 1, 32, 32)
    for b in range(8):
        pair = by_name[batch["pair"][b]]
        z, y, x = int(batch["slice"][b]), int(batch["y"][b]), int(batch["x"][b])
        k, flipped = int(batch["rot90"][b]), bool(batch["flipped"][b])
        got = _undo(model_to_hu(batch["low"][b, 1].double().numpy()), k, flipped)
        want = prior(pair.low.hu[z])[y : y + 32, x : x + 32]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
