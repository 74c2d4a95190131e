"""Dataset soundness check: per-pair summary (slices, spacing, noise, HU ranges) and problems.

Noise is estimated without a reference scan: Immerkaer's 3x3 high-pass kernel
``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` cancels locally linear anatomy and scales white noise by 6, and
the robust spread (1.4826 x MAD) of its response inside soft tissue (3x3 neighbourhood within
[-300, 300] HU on the full-dose image) gives the noise SD in HU. Using one mask for both doses
makes the low/full comparison fair; the SD of (low - full) in the same mask is the added noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from pipeline.data.pairs import Pair, PairSpec, load_pair
from pipeline.errors import DatasetError, LdctError

log = logging.getLogger(__name__)

_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)[None]
TISSUE_RANGE_HU = (-300.0, 300.0)
#: fewer slices than this are used for noise and HU statistics (evenly spaced)
MAX_STAT_SLICES = 16
_MIN_TISSUE_PIXELS = 200
#: more than this fraction of voxels below _PADDING_HU means padding was not mapped to air
_PADDING_HU, _MAX_BELOW_PADDING = -1100.0, 0.005


def _stat_slices(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_STAT_SLICES)).round().astype(int))


def tissue_mask(full_hu: np.ndarray, hu_range: tuple[float, float] = TISSUE_RANGE_HU) -> np.ndarray:
    """Pixels whose whole 3x3 in-plane neighbourhood is soft tissue (where noise is measurable)."""
    size = (1, 3, 3) if full_hu.ndim == 3 else (3, 3)
    lo = ndimage.minimum_filter(full_hu, size=size, mode="nearest")
    hi = ndimage.maximum_filter(full_hu, size=size, mode="nearest")
    mask = (lo >= hu_range[0]) & (hi <= hu_range[1])
    border = np.zeros_like(mask)  # the high-pass response is invalid on the image border
    border[..., 1:-1, 1:-1] = True
    return mask & border


def _robust_sd(values: np.ndarray) -> float:
    if values.size < _MIN_TISSUE_PIXELS:
        return float("nan")
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med)))


def noise_sd_hu(hu: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Robust noise SD (HU) of a slice (Y, X) or stack (Z, Y, X); NaN if too few tissue pixels."""
    img = np.asarray(hu, dtype=np.float32)
    stack = img[None] if img.ndim == 2 else img
    m = tissue_mask(stack) if mask is None else (mask[None] if mask.ndim == 2 else mask)
    resp = ndimage.correlate(stack, _KERNEL, mode="nearest")
    return _robust_sd(resp[m]) / 6.0


@dataclass
class PairReport:
    """Summary of one pair as ``ldct dataset check`` prints it."""

    name: str
    patient: str
    layout: str
    low: str
    full: str
    dose: float | None = None
    n_slices: int = 0
    shape: tuple[int, int, int] | None = None
    spacing_mm: tuple[float, float, float] | None = None
    hu_low: tuple[float, float, float, float] | None = None  # min, p1, p99, max
    hu_full: tuple[float, float, float, float] | None = None
    noise_low_hu: float | None = None
    noise_full_hu: float | None = None
    noise_added_hu: float | None = None  # robust SD of (low - full) in tissue
    offset_hu: float | None = None  # median (low - full) in tissue
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class DatasetReport:
    """All pairs plus dataset-level problems (pairing, duplicates)."""

    source: str
    pairs: list[PairReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def n_problems(self) -> int:
        return len(self.problems) + sum(len(p.problems) for p in self.pairs)

    @property
    def ok(self) -> bool:
        return self.n_problems == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "n_problems": self.n_problems,
            "problems": self.problems,
            "pairs": [asdict(p) for p in self.pairs],
        }


def _hu_stats(hu: np.ndarray) -> tuple[float, float, float, float]:
    p1, p99 = np.percentile(hu, [1, 99])
    return float(hu.min()), float(p1), float(p99), float(hu.max())


def summarize_pair(pair: Pair, report: PairReport) -> PairReport:
    """Fill ``report`` with statistics and the problems a pair shows (in place; returned)."""
    low, full = pair.low.hu, pair.full.hu
    report.n_slices = pair.n_slices
    report.shape = pair.low.shape
    report.spacing_mm = tuple(float(v) for v in pair.low.spacing_mm)  # type: ignore[assignment]
    report.warnings += [f"low: {w}" for w in pair.low.warnings]
    report.warnings += [f"full: {w}" for w in pair.full.warnings]
    for role, vol in (("low", low), ("full", full)):
        if not np.isfinite(vol).all():
            report.problems.append(f"{role}-dose series has non-finite voxels")
            return report
    idx = _stat_slices(pair.n_slices)
    lo_s, fu_s = low[idx], full[idx]
    report.hu_low, report.hu_full = _hu_stats(lo_s), _hu_stats(fu_s)
    for role, st, arr in (("low", report.hu_low, lo_s), ("full", report.hu_full, fu_s)):
        below = float(np.mean(arr < _PADDING_HU))
        if below > _MAX_BELOW_PADDING:
            report.problems.append(
                f"{below:.1%} of {role}-dose voxels are below {_PADDING_HU:.0f} HU (minimum "
                f"{st[0]:.0f}; unmapped padding or wrong rescale)"
            )
        if st[2] < -500:
            report.problems.append(f"{role}-dose series is mostly air (p99 {st[2]:.0f} HU)")
    if np.array_equal(lo_s, fu_s):
        report.problems.append("low-dose and full-dose images are identical")
        return report
    mask = tissue_mask(fu_s)
    if int(mask.sum()) < _MIN_TISSUE_PIXELS:
        report.warnings.append("too little soft tissue for a noise estimate")
        return report
    report.noise_low_hu = noise_sd_hu(lo_s, mask)
    report.noise_full_hu = noise_sd_hu(fu_s, mask)
    diff = (lo_s - fu_s)[mask]
    report.noise_added_hu = _robust_sd(diff)
    report.offset_hu = float(np.median(diff))
    if report.noise_low_hu <= report.noise_full_hu:
        report.problems.append(
            f"low-dose noise {report.noise_low_hu:.1f} HU is not above full-dose noise "
            f"{report.noise_full_hu:.1f} HU (series swapped, or not a low/full pair?)"
        )
    elif report.noise_low_hu < 1.15 * report.noise_full_hu:
        report.warnings.append(
            f"low-dose noise {report.noise_low_hu:.1f} HU is barely above full-dose noise "
            f"{report.noise_full_hu:.1f} HU (fine-grain estimate; strongly correlated noise or "
            "a dose close to full)"
        )
    if abs(report.offset_hu) > 20.0:
        report.problems.append(
            f"median low-full difference in tissue is {report.offset_hu:+.1f} HU (rescale "
            "intercept or calibration differs between the series)"
        )
    return report


def check_dataset(
    source: str | Path, *, loader: Callable[[PairSpec], Pair] = load_pair
) -> DatasetReport:
    """Discover every pair under ``source``, validate and summarise each, collect all problems."""
    from pipeline.data.layouts import scan_pairs
    from pipeline.utils.progress import progress

    found = scan_pairs(Path(source))
    report = DatasetReport(source=str(source), problems=list(found.problems))
    if not found.pairs:
        report.problems.append(f"no low/full-dose pairs found ({found.hint})")
        return report
    for spec in progress(found.pairs, desc="checking pairs"):
        pr = PairReport(
            name=spec.name,
            patient=spec.patient,
            layout=spec.layout,
            low=str(spec.low),
            full=str(spec.full),
            dose=spec.dose,
        )
        try:
            pair = loader(spec)
        except DatasetError as exc:
            pr.problems.append(str(exc))
        except LdctError as exc:
            pr.problems.append(f"cannot read: {exc}")
        else:
            summarize_pair(pair, pr)
        report.pairs.append(pr)
    return report
