"""Training data pipeline throughput vs the default model's consumption rate, in one run.

Measures, on synthetic paired slices (512x512 by default, 64x64 patches, batch 16, the issue's
reference setting):

1. loader alone: samples/s of :func:`pipeline.data.datasets.build_train_loader` (paired random
   crop with air rejection, paired rot90/flip, HU -> model range) with 0 and 2 workers, from the
   in-memory store and from the on-disk memmap cache;
2. model alone: samples/s of one fwd+bwd+Adam step of the registry's default model
   (``pipeline.models.registry.build_model()``, MSE loss) on a fixed batch -- if the registry
   is missing, a plain 7-layer 64-channel conv net stands in (printed);
3. model fed by the loader: the same step pulling batches from the loader.

The loader is not the bottleneck when (1) >> (2) and (3) ~= (2). Run:

    .venv/bin/python benchmarks/bench_loader.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.data.cache import build_store
from pipeline.data.datasets import build_train_loader
from pipeline.data.pairs import Pair, PairSpec, pair_volumes
from pipeline.io.volume import CTVolume


def synthetic_pairs(n_pairs: int, n_slices: int, size: int) -> list[Pair]:
    """Elliptic soft-tissue bodies in air; low = full + Gaussian noise (integer HU)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    body = ((yy - c) / (0.45 * size)) ** 2 + ((xx - c) / (0.38 * size)) ** 2 <= 1
    out = []
    for p in range(n_pairs):
        full = np.where(body, 40.0, -1000.0).astype(np.float32)[None].repeat(n_slices, 0)
        full += rng.normal(0, 10, full.shape).astype(np.float32) * body
        low = full + rng.normal(0, 40, full.shape).astype(np.float32) * body
        vols = [
            CTVolume(hu=v, spacing_mm=(1.0, 0.7, 0.7), origin_mm=(0, 0, 0), direction=np.eye(3))
            for v in (low, full)
        ]
        spec = PairSpec(f"B{p}", None, None, layout="memory")  # type: ignore[arg-type]
        out.append(pair_volumes(spec, vols[0], vols[1]))
    return out


def model_under_test() -> tuple[nn.Module, str]:
    """The registry's default model, or a 7-layer 64-channel conv net stand-in."""
    try:
        from pipeline.models.registry import DEFAULT_MODEL, build_model

        return build_model(), f"registry default model {DEFAULT_MODEL!r}"
    except ImportError:
        layers: list[nn.Module] = [nn.Conv2d(1, 64, 3, padding=1), nn.ReLU()]
        for _ in range(5):
            layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(64, 1, 3, padding=1))
        return nn.Sequential(*layers), "STAND-IN plain 7-layer 64-ch conv net (no registry)"


def loader_rate(loader: Any, n_batches: int) -> float:
    """Samples/s over ``n_batches`` after the first batch (worker start-up excluded)."""
    it: Iterator[dict[str, Any]] = iter(loader)
    first = next(it)
    bs = first["low"].shape[0]
    t0 = time.perf_counter()
    n = 0
    for _ in range(n_batches):
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
        n += bs
    return n / (time.perf_counter() - t0)


def model_rates(
    model: nn.Module, sources: dict[str, Iterator[dict[str, Any]]], n_steps: int
) -> dict[str, float]:
    """Samples/s of fwd + MSE + bwd + Adam steps per batch source, interleaved step by step.

    Interleaving (one step from each source per round) cancels the drift of a shared, loaded
    machine, so the ratios between sources stay meaningful.
    """
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.MSELoss()

    def step(b: dict[str, Any]) -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(b["low"]), b["full"])
        loss.backward()
        opt.step()

    seconds = dict.fromkeys(sources, 0.0)
    samples = dict.fromkeys(sources, 0)
    for src in sources.values():
        step(next(src))  # warm-up (and worker start-up)
    for _ in range(n_steps):
        for name, src in sources.items():
            t0 = time.perf_counter()
            b = next(src)
            step(b)
            seconds[name] += time.perf_counter() - t0
            samples[name] += int(b["low"].shape[0])
    return {name: samples[name] / seconds[name] for name in sources}


def _cycle(loader: Any) -> Iterator[dict[str, Any]]:
    while True:
        yield from loader


def _fixed(batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        yield batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller data and fewer steps")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_pairs, n_slices, size = (2, 4, 256) if args.quick else (4, 16, 512)
    n_batches, n_steps = (40, 3) if args.quick else (200, 10)
    batch, patch = 16, 64
    pairs = synthetic_pairs(n_pairs, n_slices, size)
    store = build_store(pairs)
    kw = dict(patch_size=patch, batch_size=batch, seed=0, patches_per_slice=64)
    print(
        f"data: {n_pairs} pairs x {n_slices} slices of {size}x{size}; patches {patch}x{patch}, "
        f"batch {batch}; torch threads {args.threads}"
    )

    rates: dict[str, float] = {}
    for workers in (0, 2):
        loader = build_train_loader(store, num_workers=workers, **kw)  # type: ignore[arg-type]
        rates[f"loader, memory, {workers} workers"] = loader_rate(loader, n_batches)
        del loader
    with tempfile.TemporaryDirectory() as tmp:
        disk = build_store(pairs, cache_dir=tmp)
        loader = build_train_loader(disk, num_workers=2, **kw)  # type: ignore[arg-type]
        rates["loader, disk memmap, 2 workers"] = loader_rate(loader, n_batches)
        del loader

    model, model_name = model_under_test()
    model.train()
    fixed = next(iter(build_train_loader(store, num_workers=0, **kw)))  # type: ignore[arg-type]
    sources = {"model alone (fixed batch)": _fixed(fixed)}
    for workers in (0, 2):
        loader = build_train_loader(store, num_workers=workers, **kw)  # type: ignore[arg-type]
        sources[f"model fed by loader, {workers} workers"] = _cycle(loader)
    rates.update(model_rates(model, sources, n_steps))

    base = rates["model alone (fixed batch)"]
    print(f"model: {model_name}, fwd+bwd+Adam, MSE loss")
    print(f"{'pipeline':42s} {'samples/s':>10s} {'ratio to model':>15s}")
    for name, r in rates.items():
        print(f"{name:42s} {r:10.1f} {r / base:14.2f}x")
    ratio = rates["loader, memory, 2 workers"] / base
    fed = rates["model fed by loader, 2 workers"] / base
    verdict = "not the bottleneck" if ratio > 2.0 else "BOTTLENECK"
    print(
        f"loader (2 workers) delivers {ratio:.1f}x what the model consumes; model fed by the "
        f"loader runs at {fed:.2f}x its fixed-batch rate -> loader {verdict}"
    )


if __name__ == "__main__":
    main()
