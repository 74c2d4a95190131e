"""The training-set generator: many structure sources x doses x kernels x noise levels, cached.

Each *entry* is ``slices`` clean slices of one structure source
(:mod:`pipeline.simulate.structures`) simulated with one draw of the acquisition: dose
fraction (log-uniform), FBP kernel (window and cutoff), full-dose noise level (target SD of a
water cylinder, log-uniform), electronic noise and pixel size. The physics is that of
:func:`pipeline.simulate.lowdose.simulate_pair`: Poisson photons, binomial thinning to the low
dose (the two images share photons, as projection-domain insertion does), electronic noise,
log, bias correction, FBP.

Speed: every entry uses one pixel-unit geometry (N pixels, bins of one pixel), so the cached
sparse projector is built once; a physical pixel size ``p`` enters as line integrals ``p x`` the
unit-geometry ones and the reconstruction ``/ p`` (exact for this linear, shift-invariant
geometry; tested), while the noise (I0) is calibrated on the physical geometry.

The set is written once to ``out``, in the disk layout of :mod:`pipeline.data.cache` (one folder
per entry with ``low.npy``, ``full.npy``, ``info.json``) plus ``out/trainset.json`` (the spec, every
entry's draw and seed, generation times), so ``data.simulated: out`` in a training config reads
it directly. Generation is resumable (finished entries are skipped) and can be bounded in time.

The expected full-dose target (``expected_full.npy``, ``data.simulated_target: expected_full``,
:mod:`pipeline.simulate.target`): ``noiseless + beta * (low - noiseless)``, the full dose's
expectation given the low dose without its unpredictable noise. ``noiseless`` (FBP of the
noise-free sinogram) is reconstructed in the same batch as the two doses; ``beta`` and the linear
fraction are recorded per entry in the index. Validation always scores against the real (noisy)
full dose.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import __version__
from pipeline.errors import ExitCode, SimulationError
from pipeline.simulate.geometry import ParallelGeometry, hu_to_mu, mu_to_hu
from pipeline.simulate.matrices import sim_threads
from pipeline.simulate.noise import _log_measure, calibrate_noise, thin_counts
from pipeline.simulate.projector import FilterName, back_project, forward_project, ramp_filter
from pipeline.simulate.structures import SOURCES, render
from pipeline.simulate.target import expected_full
from pipeline.utils.files import atomic_path

log = logging.getLogger(__name__)

#: kernels used for training; ``cosine`` is reserved for held-out evaluation
TRAIN_KERNELS = (
    FilterName.RAMP.value,
    FilterName.SHEPP_LOGAN.value,
    FilterName.HAMMING.value,
    FilterName.HANN.value,
)
INDEX_NAME = "trainset.json"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class TrainSetSpec:
    """What to generate; every range is sampled per entry (see module docstring)."""

    size: int = 256
    train_entries: int = 300
    val_entries: int = 12
    slices: int = 8
    seed: int = 0
    sources: tuple[str, ...] = SOURCES
    source_weights: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
    dose: tuple[float, float] = (0.05, 0.5)
    kernels: tuple[str, ...] = TRAIN_KERNELS
    #: probability of a reduced cutoff, and its range (fraction of Nyquist)
    cutoff_prob: float = 0.4
    cutoff: tuple[float, float] = (0.65, 1.0)
    target_sd_hu: tuple[float, float] = (6.0, 22.0)
    electronic_sd: tuple[float, float] = (0.0, 12.0)
    sim_threads: int = 1
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.source_weights) != len(self.sources):
            raise SimulationError("source_weights needs one weight per source")
        if FilterName.COSINE.value in self.kernels:
            raise SimulationError("the cosine kernel is reserved for held-out evaluation")
        for k in self.kernels:
            FilterName(k)
        lo, hi = self.dose
        if not 0.0 < lo <= hi < 1.0:
            raise SimulationError(f"dose range must satisfy 0 < lo <= hi < 1, found {self.dose}")


def entry_name(split: str, i: int) -> str:
    return f"{split}-{i:05d}"


def entry_seed(spec: TrainSetSpec, split: str, i: int) -> int:
    """Seed of entry ``i`` of ``split`` (train and val draw from disjoint seed streams)."""
    ss = np.random.SeedSequence([spec.seed, SPLITS.index(split), i])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> 1)


def draw_params(spec: TrainSetSpec, rng: np.random.Generator) -> dict[str, Any]:
    """One entry's acquisition draw (everything except the structure)."""
    w = np.asarray(spec.source_weights, dtype=np.float64)
    source = str(rng.choice(spec.sources, p=w / w.sum()))
    lo, hi = spec.dose
    dose = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    kernel = str(rng.choice(spec.kernels))
    cutoff = float(rng.uniform(*spec.cutoff)) if rng.random() < spec.cutoff_prob else 1.0
    sd_lo, sd_hi = spec.target_sd_hu
    target = float(math.exp(rng.uniform(math.log(sd_lo), math.log(sd_hi))))
    e_sd = float(rng.uniform(*spec.electronic_sd))
    return {
        "source": source,
        "dose": dose,
        "kernel": kernel,
        "cutoff": cutoff,
        "target_sd_hu": target,
        "electronic_sd": e_sd,
    }


def simulate_slices(
    clean_hu: np.ndarray, pixel_mm: float, params: dict[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """(full, low, I0) HU (K, N, N) float32 for clean slices on the pixel-unit geometry."""
    full, low, _, i0 = _simulate(clean_hu, pixel_mm, params, seed)
    return full, low, i0


def _simulate(
    clean_hu: np.ndarray, pixel_mm: float, params: dict[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(full, low, noiseless, I0): one projection, the three sinograms in one FBP batch."""
    k, n, _ = clean_hu.shape
    unit = ParallelGeometry.for_image(n, 1.0)
    phys = ParallelGeometry(n, pixel_mm, unit.n_views, unit.n_det, pixel_mm)
    model = calibrate_noise(
        phys,
        params["kernel"],
        params["target_sd_hu"],
        params["electronic_sd"],
        cutoff=params["cutoff"],
    )
    gen = torch.Generator().manual_seed(seed)
    line = _line_integrals(clean_hu, pixel_mm, unit)
    photons = torch.poisson(model.i0 * torch.exp(-line.double()), generator=gen)
    low = thin_counts(photons, params["dose"], gen)
    p_full = _log_measure(photons, model, 1.0, gen)
    p_low = _log_measure(low, model, params["dose"], gen)
    hu = _reconstruct(torch.cat((p_full, p_low, line.to(p_full.dtype))), pixel_mm, unit, params)
    return hu[:k], hu[k : 2 * k], hu[2 * k :], float(model.i0)


def _line_integrals(clean_hu: np.ndarray, pixel_mm: float, unit: ParallelGeometry) -> torch.Tensor:
    return forward_project(hu_to_mu(clean_hu), unit) * pixel_mm


def _reconstruct(
    sino: torch.Tensor, pixel_mm: float, unit: ParallelGeometry, params: dict[str, Any]
) -> np.ndarray:
    q = ramp_filter(sino, unit, params["kernel"], params["cutoff"])
    return mu_to_hu(back_project(q, unit) / pixel_mm).numpy()


def _write_entry(d: Path, name: str, full: np.ndarray, low: np.ndarray, slice_mm: float) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for role, arr in (("low", low), ("full", full)):
        _save_npy(d / f"{role}.npy", arr)
    info = {
        "name": name,
        "patient": name,
        "shape": list(low.shape),
        "positions_mm": [float(i * slice_mm) for i in range(low.shape[0])],
        "sop_uids": [],
    }
    with atomic_path(d / "info.json") as tmp:
        tmp.write_text(json.dumps(info), encoding="utf-8")


def render_entry(spec: TrainSetSpec, split: str, i: int) -> tuple[np.ndarray, float, dict, int]:
    """The noise-free slices of entry ``i`` of ``split``: (clean HU, pixel mm, params, seed)."""
    seed = entry_seed(spec, split, i)
    rng = np.random.default_rng(seed)
    params = draw_params(spec, rng)
    clean, pixel = render(params["source"], spec.slices, spec.size, rng)
    return clean, pixel, params, seed


def noiseless_recon(clean_hu: np.ndarray, pixel_mm: float, params: dict[str, Any]) -> np.ndarray:
    """The full dose's limit at infinite dose: FBP of the noise-free sinogram (K, N, N) HU.

    Same geometry and kernel as :func:`simulate_slices` (which makes it in the same batch for new
    entries); it differs from ``clean_hu`` by the reconstruction's own blur and discretisation,
    which both doses share.
    """
    unit = ParallelGeometry.for_image(clean_hu.shape[-1], 1.0)
    return _reconstruct(_line_integrals(clean_hu, pixel_mm, unit), pixel_mm, unit, params)


EXPECTED_FULL_NAME = "expected_full.npy"


def make_entry(
    spec: TrainSetSpec, split: str, i: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Render and simulate entry ``i`` of ``split``: (full, low, expected full, record)."""
    clean, pixel, params, seed = render_entry(spec, split, i)
    full, low, noiseless, i0 = _simulate(clean, pixel, params, seed)
    target, beta, linear = expected_full(noiseless, full, low)
    record = {"name": entry_name(split, i), "split": split, "seed": seed, "pixel_mm": pixel}
    record.update(params, i0=i0, beta=round(beta, 5), linear_fraction=round(linear, 5))
    return full, low, target, record


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr, dtype=np.float32))


def add_expected_full(out: str | Path) -> dict[str, Any]:
    """Write ``expected_full.npy`` into every entry of an existing set that lacks it.

    The noise-free slices are rendered again from the entry's recorded seed and reconstructed
    without noise (one projection, no photon simulation or noise calibration: ~3-6 s per entry),
    so sets made before the expected target existed gain it without re-simulating.
    """
    out = Path(out)
    index = read_trainset(out)
    spec = TrainSetSpec(**_spec_from_dict(index["spec"]))
    with sim_threads(spec.sim_threads):
        _add_expected_full(out, spec, index)
    with atomic_path(out / INDEX_NAME) as tmp:
        tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
    return index


def _add_expected_full(out: Path, spec: TrainSetSpec, index: dict[str, Any]) -> None:
    for e in index["entries"]:
        d = out / e["name"]
        if (d / EXPECTED_FULL_NAME).is_file() and "linear_fraction" in e:
            continue
        split, i = e["name"].split("-")
        clean, pixel, params, seed = render_entry(spec, split, int(i))
        if seed != e["seed"]:
            raise SimulationError("entry seed does not match the spec; set is corrupt", path=d)
        full, low = np.load(d / "full.npy"), np.load(d / "low.npy")
        target, beta, linear = expected_full(noiseless_recon(clean, pixel, params), full, low)
        _save_npy(d / EXPECTED_FULL_NAME, target)
        e["beta"], e["linear_fraction"] = round(beta, 5), round(linear, 5)
        log.info(
            "%s: expected full-dose target (beta %.3f, dose %.3f, linear %.4f)",
            d.name,
            beta,
            e["dose"],
            linear,
        )


def _spec_from_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _load_index(out: Path) -> dict[str, Any] | None:
    p = out / INDEX_NAME
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SimulationError(f"training-set index is unreadable: {exc}", path=p) from exc
    return data if isinstance(data, dict) else None


def _spec_dict(spec: TrainSetSpec) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(spec)))


def write_trainset(
    out: str | Path, spec: TrainSetSpec, *, time_budget_s: float | None = None
) -> dict[str, Any]:
    """Generate (or complete) the set under ``out``; returns the index written to trainset.json.

    Validation entries are made first (all of them), then training entries in order until done
    or ``time_budget_s`` runs out; an existing ``out`` must have been made with the same spec.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = _load_index(out)
    if index is not None and index.get("spec") != _spec_dict(spec):
        raise SimulationError(
            "this folder holds a training set made with another spec; choose another folder",
            path=out,
        )
    index = index or {"spec": _spec_dict(spec), "version": __version__, "entries": []}
    done = {e["name"] for e in index["entries"]}
    start = time.perf_counter()
    spent = float(index.get("generation_s", 0.0))
    todo = [("val", i) for i in range(spec.val_entries)] + [
        ("train", i) for i in range(spec.train_entries)
    ]
    with sim_threads(spec.sim_threads):
        for split, i in todo:
            name = entry_name(split, i)
            if name in done:
                continue
            if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
                log.info("time budget of %.0f s reached; %d entries made", time_budget_s, len(done))
                break
            t0 = time.perf_counter()
            full, low, target, record = make_entry(spec, split, i)
            slice_mm = 1.0
            _write_entry(out / name, name, full, low, slice_mm)
            _save_npy(out / name / EXPECTED_FULL_NAME, target)
            record["seconds"] = round(time.perf_counter() - t0, 3)
            index["entries"].append(record)
            done.add(name)
            index["generation_s"] = spent + time.perf_counter() - start
            with atomic_path(out / INDEX_NAME) as tmp:
                tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
            log.info(
                "%s %s dose %.3f %s: %.1f s",
                name,
                record["source"],
                record["dose"],
                record["kernel"],
                record["seconds"],
            )
    return index


def read_trainset(path: str | Path) -> dict[str, Any]:
    """The index of a generated training set (SimulationError when there is none)."""
    out = Path(path)
    index = _load_index(out)
    if index is None or not index.get("entries"):
        raise SimulationError(
            "no generated training set here (expected trainset.json with entries; make one with "
            "`python -m pipeline.simulate.trainset OUT`)",
            path=out / INDEX_NAME,
        )
    return index


def envelope(index: dict[str, Any]) -> dict[str, Any]:
    """The training envelope of a generated set (ranges actually drawn, training entries).

    ``kernels`` and ``matrix`` stay empty (not limited): the FBP filters simulated (ramp,
    Shepp-Logan, Hamming, Hann, with cutoffs) are not vendor ConvolutionKernel names, which the
    guardrail compares against, and the network is fully convolutional and trained on patches,
    so no matrix size is special. Both are recorded for the model card as ``fbp_filters`` and
    ``train_matrix``.
    """
    train = [e for e in index["entries"] if e["split"] == "train"] or index["entries"]
    px = [e["pixel_mm"] for e in train]
    dose = [e["dose"] for e in train]
    return {
        "pixel_spacing_mm": [round(min(px), 3), round(max(px), 3)],
        "slice_thickness_mm": None,
        "dose_fraction": [round(min(dose), 4), round(max(dose), 4)],
        "kernels": [],
        "matrix": [],
        "kvp": None,
        "source": "simulated",
        "fbp_filters": sorted({e["kernel"] for e in train}),
        "train_matrix": [int(index["spec"]["size"])],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.simulate.trainset OUT [--entries N] [--budget S]``."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--entries", type=int, default=TrainSetSpec.train_entries)
    ap.add_argument("--val-entries", type=int, default=TrainSetSpec.val_entries)
    ap.add_argument("--size", type=int, default=TrainSetSpec.size)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=None, help="time budget in seconds")
    ap.add_argument(
        "--add-expected-full",
        action="store_true",
        help="only add expected_full.npy to the entries of an existing set that lack it",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        return _run(args)
    except SimulationError as exc:  # a missing or foreign set: one line naming it, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.INPUT


def _run(args: Any) -> int:
    if args.add_expected_full:
        index = add_expected_full(args.out)
        betas = [e["beta"] for e in index["entries"]]
        print(f"{len(betas)} entries; beta {min(betas):.3f}-{max(betas):.3f}")
        return 0
    spec = TrainSetSpec(
        size=args.size,
        train_entries=args.entries,
        val_entries=args.val_entries,
        seed=args.seed,
    )
    index = write_trainset(args.out, spec, time_budget_s=args.budget)
    n = len(index["entries"])
    print(f"{n} entries, {index['generation_s']:.0f} s, envelope {envelope(index)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
