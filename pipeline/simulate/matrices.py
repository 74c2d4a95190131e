"""Sparse system matrices for the parallel-beam geometry (cached per geometry).

For images up to ~300 x 300 the projector and back-projector are applied as one sparse matrix
product over a whole batch of slices, which on a CPU is far faster than re-deriving sample
positions for every slice (scikit-image's per-angle loops, or ``grid_sample``):

* forward: Joseph's method -- each ray steps through the rows (or columns, for steep rays) and
  interpolates linearly between the two nearest pixels, weight ``pixel_mm / |cos|`` per step;
* back-projection: pixel-driven, linear interpolation between the two nearest detector bins,
  weight ``pi / n_views`` (the same operator as :func:`pipeline.simulate.projector.back_project`).

Larger images fall back to the matrix-free ``grid_sample`` operators (memory grows as N^3).
"""

from __future__ import annotations

import math
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
def _one_thread() -> Iterator[None]:
    """Many small tensor ops: intra-op threads only add synchronisation cost (much more so on a
    loaded machine), so matrix building runs single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
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
    with _one_thread():
        return _forward_matrix(geom)


def _forward_matrix(geom: ParallelGeometry) -> torch.Tensor:
    n, d_n, px = geom.n_pixels, geom.n_det, geom.pixel_mm
    t = geom.det_centres_mm()  # (D,)
    centre = (n - 1) / 2.0
    pos = geom.pixel_centres_mm()  # (N,)
    rows_l, cols_l, vals_l = [], [], []
    for a, th in enumerate(geom.angles().tolist()):
        c, s = math.cos(th), math.sin(th)
        if abs(c) >= abs(s):  # step along rows j: x = (t - y_j s) / c
            f = (t[:, None] - pos[None, :] * s) / c / px + centre  # (D, N) column index
            step, along_rows = px / abs(c), True
        else:  # step along columns i: y = (t - x_i c) / s
            f = (t[:, None] - pos[None, :] * c) / s / px + centre  # (D, N) row index
            step, along_rows = px / abs(s), False
        f0 = torch.floor(f)
        taps = torch.stack((f0, f0 + 1), dim=-1)  # (D, N, 2): rows stay grouped by (view, bin)
        wts = torch.stack((1.0 - (f - f0), f - f0), dim=-1) * step
        k = torch.arange(n)[None, :, None]
        ok = (taps >= 0) & (taps <= n - 1) & (wts > 0)
        idx = taps.long()
        col = k * n + idx if along_rows else idx * n + k
        drow = torch.arange(d_n)[:, None, None].expand_as(taps)
        rows_l.append((a * d_n + drow)[ok])
        cols_l.append(col[ok])
        vals_l.append(wts[ok].float())
    return _csr(
        torch.cat(rows_l), torch.cat(cols_l), torch.cat(vals_l), (geom.n_views * d_n, n * n)
    )


@lru_cache(maxsize=2)
def back_matrix(geom: ParallelGeometry) -> torch.Tensor:
    """CSR (N * N, n_views * n_det): image = M @ filtered sinogram (zero outside the FOV)."""
    with _one_thread():
        return _back_matrix(geom)


def _back_matrix(geom: ParallelGeometry) -> torch.Tensor:
    n, d_n = geom.n_pixels, geom.n_det
    pos = geom.pixel_centres_mm()
    yy, xx = torch.meshgrid(pos, pos, indexing="ij")
    inside = torch.nonzero(geom.fov_mask().reshape(-1)).squeeze(1)  # (P,)
    xx, yy = xx.reshape(-1)[inside], yy.reshape(-1)[inside]
    th = geom.angles()
    t = xx[:, None] * torch.cos(th)[None, :] + yy[:, None] * torch.sin(th)[None, :]  # (P, A)
    f = t / geom.det_mm + (d_n - 1) / 2.0
    f0 = torch.floor(f)
    taps = torch.stack((f0, f0 + 1), dim=-1)  # (P, A, 2): rows stay grouped by pixel
    wts = torch.stack((1.0 - (f - f0), f - f0), dim=-1) * (math.pi / geom.n_views)
    view = torch.arange(geom.n_views)[None, :, None] * d_n
    ok = (taps >= 0) & (taps <= d_n - 1)
    rows = inside[:, None, None].expand_as(taps)[ok]
    return _csr(rows, (view + taps.long())[ok], wts[ok].float(), (n * n, geom.n_views * d_n))


def apply(matrix: torch.Tensor, batch: torch.Tensor, out_shape: tuple[int, int]) -> torch.Tensor:
    """``matrix @ x`` for every item of ``batch`` (B, ...) -> (B, *out_shape)."""
    b = batch.shape[0]
    x = batch.reshape(b, -1).T.contiguous()  # (cols, B)
    y = matrix @ x
    return y.T.reshape(b, *out_shape).contiguous()
