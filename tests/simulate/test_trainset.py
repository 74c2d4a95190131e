"""The training-set generator: unit-geometry scaling, kernels, noise physics, cache, loaders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import DatasetError, SimulationError
from pipeline.simulate.geometry import ParallelGeometry, hu_to_mu
from pipeline.simulate.noise import calibrate_noise
from pipeline.simulate.projector import (
    FilterName,
    back_project,
    filter_response,
    forward_project,
    ramp_filter,
)
from pipeline.simulate.structures import SOURCES, render
from pipeline.simulate.target import expected_full
from pipeline.simulate.trainset import (
    EXPECTED_FULL_NAME,
    TrainSetSpec,
    add_expected_full,
    entry_seed,
    envelope,
    make_entry,
    noiseless_recon,
    read_trainset,
    render_entry,
    simulate_slices,
    write_trainset,
)


def _disk(n: int, frac: float = 0.7) -> np.ndarray:
    c = np.arange(n) - (n - 1) / 2.0
    r2 = c[None, :] ** 2 + c[:, None] ** 2
    return np.where(r2 <= (frac * n / 2) ** 2, 0.0, -1000.0).astype(np.float32)


def test_physical_pixel_is_a_scaling_of_the_unit_geometry() -> None:
    """Projecting/reconstructing on pixel p equals the unit geometry scaled by p (the shortcut
    the generator takes), checked against the projector built on the physical geometry."""
    n, p = 40, 0.7
    unit = ParallelGeometry.for_image(n, 1.0)
    phys = ParallelGeometry(n, p, unit.n_views, unit.n_det, p)
    img = hu_to_mu(_disk(n)[None] + 200.0 * np.random.default_rng(0).random((1, n, n)))
    s_unit, s_phys = forward_project(img, unit), forward_project(img, phys)
    torch.testing.assert_close(s_phys, s_unit * p, rtol=1e-4, atol=1e-5)
    r_phys = back_project(ramp_filter(s_phys, phys, "hann"), phys)
    r_unit = back_project(ramp_filter(s_unit * p, unit, "hann"), unit) / p
    torch.testing.assert_close(r_phys, r_unit, rtol=1e-4, atol=1e-6)


def test_hamming_window_and_cutoff() -> None:
    n_fft = 256
    ramp = filter_response(FilterName.RAMP, n_fft).double()
    ham = filter_response(FilterName.HAMMING, n_fft).double()
    f = torch.fft.fftfreq(n_fft, dtype=torch.float64)
    expected = ramp * (0.54 + 0.46 * torch.cos(2 * math.pi * f))
    torch.testing.assert_close(ham, expected, rtol=1e-5, atol=1e-7)
    cut = filter_response(FilterName.HANN, n_fft, cutoff=0.6).double()
    assert torch.all(cut[f.abs() > 0.3] == 0)
    inside = (f.abs() > 0) & (f.abs() < 0.3)
    window = 0.5 * (1 + torch.cos(2 * math.pi * f[inside] / 0.6))
    torch.testing.assert_close(cut[inside], ramp[inside] * window, rtol=1e-5, atol=1e-7)
    with pytest.raises(SimulationError, match="cutoff"):
        filter_response(FilterName.HANN, n_fft, cutoff=1.5)


def test_smoother_cutoff_needs_fewer_photons_for_the_same_noise() -> None:
    g = ParallelGeometry.for_image(64, 1.0)
    sharp = calibrate_noise(g, "hann", 12.0, 5.0)
    smooth = calibrate_noise(g, "hann", 12.0, 5.0, cutoff=0.6)
    assert smooth.i0 < sharp.i0


def test_low_minus_full_noise_follows_the_dose() -> None:
    """Shared photons: var(low - full) = var(full) (1/d - 1) to first order, in a water disk."""
    n, k, dose = 64, 24, 0.25
    clean = np.repeat(_disk(n, 0.8)[None], k, axis=0)
    params = {
        "dose": dose,
        "kernel": "ramp",
        "cutoff": 1.0,
        "target_sd_hu": 20.0,
        "electronic_sd": 0.0,
    }
    full, low, i0 = simulate_slices(clean, 0.8, params, seed=1)
    assert i0 > 0
    roi = (slice(None), slice(24, 40), slice(24, 40))
    sd_full = float((full - clean)[roi].std())
    sd_diff = float((low - full)[roi].std())
    ratio = sd_diff / (sd_full * math.sqrt(1 / dose - 1))
    assert 0.85 < ratio < 1.15
    assert abs(float(low[roi].mean())) < 5.0  # unbiased mean HU


def test_entries_are_deterministic_and_splits_use_disjoint_seeds() -> None:
    spec = TrainSetSpec(size=32, slices=2, train_entries=3, val_entries=2)
    seeds = {entry_seed(spec, s, i) for s in ("train", "val") for i in range(3)}
    assert len(seeds) == 6
    a, b = make_entry(spec, "train", 1), make_entry(spec, "train", 1)
    for k in range(3):
        np.testing.assert_array_equal(a[k], b[k])
    assert a[3] == b[3]
    lo, hi = spec.dose
    assert lo <= a[3]["dose"] <= hi and a[3]["kernel"] in spec.kernels


@pytest.mark.parametrize("source", SOURCES)
def test_every_source_stays_inside_the_field_of_view(source: str) -> None:
    n = 48
    hu, px = render(source, 2, n, np.random.default_rng(3))
    assert hu.shape == (2, n, n) and hu.dtype == np.float32 and px > 0
    c = np.arange(n) - (n - 1) / 2.0
    outside = c[None, :] ** 2 + c[:, None] ** 2 > (n / 2.0) ** 2
    assert np.all(hu[:, outside] == -1000.0)
    assert float(hu.max()) > -500.0  # there is an object


def test_cosine_is_reserved_and_spec_checked() -> None:
    with pytest.raises(SimulationError, match="reserved"):
        TrainSetSpec(kernels=("cosine",))
    with pytest.raises(SimulationError, match="dose"):
        TrainSetSpec(dose=(0.5, 0.2))
    with pytest.raises(SimulationError, match="source_weights"):
        TrainSetSpec(source_weights=(1.0,))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainSetSpec]:
    out = tmp_path_factory.mktemp("trainset")
    spec = TrainSetSpec(size=32, slices=2, train_entries=3, val_entries=1)
    write_trainset(out, spec)
    return out, spec


def test_written_set_resumes_and_refuses_another_spec(small_set: tuple[Path, TrainSetSpec]) -> None:
    out, spec = small_set
    index = read_trainset(out)
    assert [e["name"] for e in index["entries"]] == [
        "val-00000",
        "train-00000",
        "train-00001",
        "train-00002",
    ]
    mtime = (out / "train-00000" / "low.npy").stat().st_mtime_ns
    again = write_trainset(out, spec)  # nothing left to do: files untouched
    assert len(again["entries"]) == 4
    assert (out / "train-00000" / "low.npy").stat().st_mtime_ns == mtime
    with pytest.raises(SimulationError, match="another spec"):
        write_trainset(out, TrainSetSpec(size=32, slices=3, train_entries=3, val_entries=1))


def test_envelope_follows_the_shared_schema(small_set: tuple[Path, TrainSetSpec]) -> None:
    from pipeline.models.envelope import TrainingEnvelope

    out, _ = small_set
    index = read_trainset(out)
    env = TrainingEnvelope.from_dict(envelope(index))
    train = [e for e in index["entries"] if e["split"] == "train"]
    assert env.dose_fraction == (
        round(min(e["dose"] for e in train), 4),
        round(max(e["dose"] for e in train), 4),
    )
    # FBP filter names are not vendor kernel names, and a patch-trained fully convolutional
    # net has no special matrix: neither limits the guardrail, both are kept for the card
    assert env.kernels == () and env.matrix == () and env.source == "simulated"
    assert set(env.extra["fbp_filters"]) == {e["kernel"] for e in train}
    assert env.extra["train_matrix"] == [32]
    from pipeline.models.envelope import SeriesFacts

    px = env.pixel_spacing_mm[0]
    real_512 = SeriesFacts(pixel_spacing_mm=(px, px), matrix=(512, 512), kernel="B30f")
    assert env.check(real_512) == []  # a real 512^2 series inside the ranges is not flagged


def test_loaders_read_the_generated_set(small_set: tuple[Path, TrainSetSpec]) -> None:
    from pipeline.data.config import DataConfig, build_loaders

    out, _ = small_set
    cfg = DataConfig(simulated=out, patch_size=16, batch_size=2, num_workers=0)
    loaders = build_loaders(cfg, seed=0)
    assert loaders.splits.val == ["val-00000"]
    assert len(loaders.splits.train) == 3
    batch = next(iter(loaders.train))
    assert tuple(batch["low"].shape) == (2, 1, 16, 16)
    full = np.load(out / "val-00000" / "full.npy")
    assert loaders.val is not None
    item = next(iter(loaders.val))
    from pipeline.intensity import hu_to_model

    np.testing.assert_allclose(item["full"][0, 0].numpy(), hu_to_model(full[0]), rtol=1e-6)
    with pytest.raises(ValueError, match="one of root, manifest or simulated"):
        DataConfig(simulated=out, root=out)


def test_missing_set_is_a_clear_error(tmp_path: Path) -> None:
    from pipeline.data.config import DataConfig, build_loaders

    with pytest.raises(DatasetError, match=r"trainset\.json"):
        build_loaders(DataConfig(simulated=tmp_path), seed=0)
    (tmp_path / "trainset.json").write_text(json.dumps({"spec": {}, "entries": []}))
    with pytest.raises(DatasetError, match="no generated training set"):
        build_loaders(DataConfig(simulated=tmp_path), seed=0)


def test_expected_full_regression_recovers_the_shared_noise_fraction() -> None:
    """Synthetic oracle: n_low = n_full + n_extra (independent), so beta = var_full / var_low."""
    rng = np.random.default_rng(3)
    base = rng.uniform(-100, 100, (4, 64, 64))
    n_full = rng.normal(0, 6.0, base.shape)
    n_low = n_full + rng.normal(0, 12.0, base.shape)
    full, low = base + n_full, base + n_low
    low[0, :4, :4] += 3000.0  # a streak both doses share (photon starvation): not linear
    full[0, :4, :4] += 2500.0
    target, beta, linear = expected_full(base, full, low)
    assert beta == pytest.approx(36.0 / 180.0, abs=0.01)
    assert 0.99 < linear < 1.0
    lin = np.ones(base.shape, bool)
    lin[0, :4, :4] = False
    np.testing.assert_allclose(target[lin], (base + beta * n_low)[lin], atol=1e-3)
    np.testing.assert_array_equal(target[~lin], full[~lin].astype(np.float32))  # the full dose
    # the target keeps the full dose's expectation: its residual to the full dose is
    # uncorrelated with the low dose's noise
    r = (base + n_full - target)[lin]
    assert abs(np.corrcoef(r, n_low[lin])[0, 1]) < 0.02


def test_generated_entry_beta_is_the_dose_fraction() -> None:
    """Binomial thinning: the full-dose noise is the dose fraction of the low-dose noise."""
    spec = TrainSetSpec(size=64, slices=2, train_entries=1, val_entries=0, electronic_sd=(0, 0))
    full, low, target, record = make_entry(spec, "train", 0)
    assert record["beta"] == pytest.approx(record["dose"], abs=0.05 + 0.1 * record["dose"])
    clean, pixel, params, seed = render_entry(spec, "train", 0)
    r0 = noiseless_recon(clean, pixel, params)
    # the noiseless FBP made in the entry's own batch is the one the backfill reconstructs
    from pipeline.simulate.trainset import _simulate

    np.testing.assert_array_equal(_simulate(clean, pixel, params, seed)[2], r0)
    # the noiseless reconstruction is what both doses scatter around
    assert abs(float(np.mean(full - r0))) < 1.0 and abs(float(np.mean(low - r0))) < 2.0
    # the target is less noisy than the full dose (it has none of its unpredictable part)
    assert float(np.std(target - r0)) < float(np.std(full - r0))


def test_expected_target_is_backfilled_and_read_by_the_loader(
    small_set: tuple[Path, TrainSetSpec],
) -> None:
    from pipeline.data.config import DataConfig, build_loaders

    out, _ = small_set
    index = json.loads((out / "trainset.json").read_text())
    made = {e["name"]: (e["beta"], e["linear_fraction"]) for e in index["entries"]}
    for e in index["entries"]:  # as made by a version without the target
        (out / e["name"] / EXPECTED_FULL_NAME).unlink()
        del e["beta"], e["linear_fraction"]
    (out / "trainset.json").write_text(json.dumps(index))
    with pytest.raises(DatasetError, match="add-expected-full"):
        build_loaders(DataConfig(simulated=out, simulated_target="expected_full"), seed=0)
    again = add_expected_full(out)
    assert {e["name"]: (e["beta"], e["linear_fraction"]) for e in again["entries"]} == made
    cfg = DataConfig(
        simulated=out, simulated_target="expected_full", patch_size=16, batch_size=2, num_workers=0
    )
    loaders = build_loaders(cfg, seed=0)
    assert loaders.train.dataset.store.target_file == EXPECTED_FULL_NAME  # type: ignore[attr-defined]
    assert loaders.val is not None
    item = next(iter(loaders.val))  # validation scores against the real full dose
    from pipeline.intensity import hu_to_model

    full = np.load(out / "val-00000" / "full.npy")
    np.testing.assert_allclose(item["full"][0, 0].numpy(), hu_to_model(full[0]), rtol=1e-6)


def test_module_command_names_a_missing_set_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.simulate.trainset import main

    assert main([str(tmp_path / "nowhere"), "--add-expected-full"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "trainset.json" in err and "Traceback" not in err
