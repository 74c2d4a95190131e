"""Many slices through many profiles, fast on CPU: small batches on a pool of worker threads.

Measured (benchmarks/bench_metrics.py, docs/evaluation.md): batches of 4 slices keep the SSIM
temporaries in cache, and one worker thread per core, each running single-threaded torch ops
(which release the GIL), beats torch's intra-op threading on small tensors by a wide margin
on a loaded 2-core machine, where OpenMP barriers stall. Results equal the unbatched calls.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pipeline.evaluate.profiles import MetricProfile, compute_profile, get_profile

BATCH_SLICES = 4


def _one_batch(
    pred: np.ndarray,
    target: np.ndarray,
    masks: np.ndarray | None,
    profiles: list[MetricProfile],
) -> dict[tuple[str, str], np.ndarray]:
    torch.set_num_threads(1)  # this worker's intra-op pool; set per thread
    x = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32))[:, None]
    y = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))[:, None]
    m = torch.from_numpy(np.ascontiguousarray(masks))[:, None] if masks is not None else None
    out: dict[tuple[str, str], np.ndarray] = {}
    with torch.inference_mode():
        for p in profiles:
            for k, v in compute_profile(x, y, p, body_mask=m).items():
                out[(p.name, k)] = v.double().numpy()
    return out


def compute_profiles(
    pred_hu: np.ndarray,
    target_hu: np.ndarray,
    profiles: Sequence[str | MetricProfile],
    body_masks: np.ndarray | None = None,
    *,
    batch: int = BATCH_SLICES,
    workers: int | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """``{(profile, metric): (N,) values}`` for ``(N, H, W)`` HU stacks (float64 results)."""
    profs = [get_profile(p) for p in profiles]
    n = pred_hu.shape[0]
    starts = list(range(0, n, batch))
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(starts)))
    saved = torch.get_num_threads()

    def run(s: int) -> dict[tuple[str, str], np.ndarray]:
        sl = slice(s, s + batch)
        return _one_batch(
            pred_hu[sl], target_hu[sl], None if body_masks is None else body_masks[sl], profs
        )

    try:
        if n_workers == 1:
            parts = [run(s) for s in starts]
        else:
            with ThreadPoolExecutor(n_workers) as pool:
                parts = list(pool.map(run, starts))
    finally:
        torch.set_num_threads(saved)
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
