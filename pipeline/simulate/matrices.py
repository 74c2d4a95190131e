"""Sparse system matrices for the parallel-beam geometry (cached per geometry).

For images up to ~300 x 300 the projector and back-projector are applied as one sparse matrix
product over a whole batch of slices, which on a CPU is far faster than re-deriving sample
positions for every slice (scikit-image's per-angle loops, or ``grid_sample``):

* forward: Joseph's method -- each ray steps through the rows (or columns, for steep rays) and
  interpolates linearly between the two nearest pixels, weight ``pixel_mm / |cos|`` per step;
* back-projection: pixel-driven, linear interpolation between the two nearest detector bins,
  weight ``pi / n_views`` (the same operator as :func:`pipeline.simulate.projector.back_project`).

Larger images (the matrices grow as N^3) use the matrix-free ``grid_sample`` operators; building
blocks of views on the fly (``forward_streamed`` / ``back_streamed``) is available but was
measured slower than sampling unless batches are very large (the build dominates).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import torch

from pipeline.simulate.geometry import ParallelGeometry

#: largest total number of non-zeros (both matrices) kept in memory (~8 bytes each)
MAX_NNZ = 160_000_000


def estimated_nnz(geom: ParallelGeometry) -> int:
    """Non-zeros of the forward plus back-projection matrices (upper bound)."""
    n = geom.n_pixels
    return 2 * geom.n_views * geom.n_det * n + 2 * geom.n_views * n * n


def sparse_ok(geom: ParallelGeometry) -> bool:
    """Whether this geometry's matrices fit the memory budget."""
    return estimated_nnz(geom) <= MAX_NNZ


@contextmanager
def sim_threads(n: int | None = None) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads (default: env ``LDCT_SIM_THREADS``, else 1).

    The simulation's operations are many medium-sized tensor ops on slice batches; measured on
    the 2-core project machine under load, 2 OpenMP threads made them ~10x *slower* than 1
    (threads wait for each other when the OS deschedules one). Batching gives the speed."""
    want = n if n is not None else int(os.environ.get("LDCT_SIM_THREADS", "1"))
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, want))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _csr(
    rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """CSR matrix from COO triplets already grouped by row (rows non-decreasing)."""
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is used read-only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, size=shape, check_invariants=False)


@lru_cache(maxsize=2)
def forward_matrix(geom: ParallelGeometry) -> torch.Tensor:
    """CSR (n_views * n_det, N * N): sinogram = M @ image (row-major pixels, 1/mm -> unitless)."""
    with sim_threads():
        return forward_block(geom, 0, geom.n_views)


def forward_block(geom: ParallelGeometry, a0: int, a1: int) -> torch.Tensor:
    """Rows of the forward matrix for views ``a0 <= a < a1``: CSR ((a1-a0) * n_det, N * N)."""
    n, d_n, px = geom.n_pixels, geom.n_det, geom.pixel_mm
    # float32 index arithmetic: fractional indices < 1e4 keep ~1e-3 pixel precision
    t = geom.det_centres_mm().float()[None, :, None]  # (1, D, 1)
    pos = geom.pixel_centres_mm().float()[None, None, :]  # (1, 1, N): row (or column) stepped
    k = torch.arange(n)[None, None, :, None]
    theta = geom.angles()
    chunk = max(1, 4_000_000 // (d_n * n))
    rows_l, cols_l, vals_l = [], [], []
    for c0 in range(a0, a1, chunk):
        th = theta[c0 : min(c0 + chunk, a1)]
        c, s = torch.cos(th).float()[:, None, None], torch.sin(th).float()[:, None, None]
        by_rows = c.abs() >= s.abs()  # (A, 1, 1): step along rows j, x = (t - y_j s) / c
        lead = torch.where(by_rows, c, s)  # the dominant direction cosine
        other = torch.where(by_rows, s, c)
        f = (t - pos * other) / lead / px + (n - 1) / 2.0  # (A, D, N) fractional index
        f0 = torch.floor(f)
        taps = torch.stack((f0, f0 + 1), dim=-1)  # (A, D, N, 2): rows grouped by (view, bin)
        wts = torch.stack((1.0 - (f - f0), f - f0), dim=-1) * (px / lead.abs())[..., None]
        ok = (taps >= 0) & (taps <= n - 1) & (wts > 0)
        idx = taps.long().clamp(0, n - 1)
        col = torch.where(by_rows[..., None], k * n + idx, idx * n + k)
        view = torch.arange(c0 - a0, c0 - a0 + len(th))[:, None, None, None]
        row = view * d_n + torch.arange(d_n)[None, :, None, None]
        rows_l.append(row.expand_as(taps)[ok])
        cols_l.append(col[ok])
        vals_l.append(wts[ok])
    return _csr(torch.cat(rows_l), torch.cat(cols_l), torch.cat(vals_l), ((a1 - a0) * d_n, n * n))


@lru_cache(maxsize=2)
def back_matrix(geom: ParallelGeometry) -> torch.Tensor:
    """CSR (N * N, n_views * n_det): image = M @ filtered sinogram (zero outside the FOV)."""
    with sim_threads():
        return back_block(geom, 0, geom.n_views)


def back_block(geom: ParallelGeometry, a0: int, a1: int) -> torch.Tensor:
    """Back-projection from views ``a0 <= a < a1`` only: CSR (N * N, (a1-a0) * n_det)."""
    n, d_n = geom.n_pixels, geom.n_det
    pos = geom.pixel_centres_mm().float()
    yy, xx = torch.meshgrid(pos, pos, indexing="ij")
    inside = torch.nonzero(geom.fov_mask().reshape(-1)).squeeze(1)  # (P,)
    xx, yy = xx.reshape(-1)[inside], yy.reshape(-1)[inside]
    th = geom.angles()[a0:a1]
    cos, sin = torch.cos(th).float()[None, :], torch.sin(th).float()[None, :]
    t = xx[:, None] * cos + yy[:, None] * sin  # (P, A)
    f = t / geom.det_mm + (d_n - 1) / 2.0
    f0 = torch.floor(f)
    taps = torch.stack((f0, f0 + 1), dim=-1)  # (P, A, 2): rows stay grouped by pixel
    wts = torch.stack((1.0 - (f - f0), f - f0), dim=-1) * (math.pi / geom.n_views)
    view = torch.arange(a1 - a0)[None, :, None] * d_n
    ok = (taps >= 0) & (taps <= d_n - 1)
    rows = inside[:, None, None].expand_as(taps)[ok]
    return _csr(rows, (view + taps.long())[ok], wts[ok], (n * n, (a1 - a0) * d_n))


def _view_chunk(geom: ParallelGeometry) -> int:
    """Views per streamed block (~16 M non-zeros per block)."""
    per_view = 2 * geom.n_pixels * max(geom.n_pixels, geom.n_det)
    return max(1, min(geom.n_views, 16_000_000 // per_view))


def forward_streamed(geom: ParallelGeometry, images: torch.Tensor) -> torch.Tensor:
    """Forward projection of (B, N, N) with blocks of the matrix built on the fly (large N)."""
    out = torch.empty(images.shape[0], geom.n_views, geom.n_det, dtype=torch.float32)
    step = _view_chunk(geom)
    for a0 in range(0, geom.n_views, step):
        a1 = min(a0 + step, geom.n_views)
        out[:, a0:a1] = apply(forward_block(geom, a0, a1), images, (a1 - a0, geom.n_det))
    return out


def back_streamed(geom: ParallelGeometry, q: torch.Tensor) -> torch.Tensor:
    """Back-projection of (B, n_views, n_det) with blocks built on the fly (large N)."""
    n = geom.n_pixels
    acc = torch.zeros(q.shape[0], n, n, dtype=torch.float32)
    step = _view_chunk(geom)
    for a0 in range(0, geom.n_views, step):
        a1 = min(a0 + step, geom.n_views)
        acc += apply(back_block(geom, a0, a1), q[:, a0:a1], (n, n))
    return acc


def apply(matrix: torch.Tensor, batch: torch.Tensor, out_shape: tuple[int, int]) -> torch.Tensor:
    """``matrix @ x`` for every item of ``batch`` (B, ...) -> (B, *out_shape)."""
    b = batch.shape[0]
    x = batch.reshape(b, -1).T.contiguous()  # (cols, B)
    y = matrix @ x
    return y.T.reshape(b, *out_shape).contiguous()
