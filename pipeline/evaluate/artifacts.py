"""Grid (checkerboard) artifact and tile-seam detector on residual images.

A *residual* is ``denoised - input`` (no reference needed) or ``denoised - full``. Denoising
removes noise and keeps anatomy, so the residual is mostly smooth-spectrum noise; patterns from
pooled perceptual features (periods 2, 4, 8, 16 px), strided transposed convolutions (period 2,
Nyquist) and tiled inference (period = tile stride) show up as narrow spectral peaks.

* Spectral test: 2-D periodogram of the Hann-windowed, de-meaned residual. For every suspect
  frequency ``f = k / period`` (cycles/px, ``f <= 0.5``) on the x axis ``(0, f)``, the y axis
  ``(f, 0)`` and the diagonals ``(f, +-f)``, the peak power (its bin; the max of the 3x3
  bins around it when the frequency falls between bins, e.g. a tile stride) is
  compared with the local spectral background: the larger of the medians of the bins 3..10 away
  along the same row and along the same column (so anatomy streaks along the spectral axes
  raise the background instead of faking a peak). ``ratio_db = 10 log10(peak / background)``.
* Spatial seam test: signed jumps between adjacent columns (rows) of the residual inside the
  body, averaged in 32-px blocks along the line, squared, median over blocks (see
  :func:`seam_scan`); minus a running median over 33 lines, divided by a robust SD
  (1.4826 MAD): a robust z-score per line; tile borders show as isolated high z.

The seam test is applied **only at known tile borders** (:func:`tile_border_lines`, from the
tile stride and size that ``ldct denoise`` records or ``--tile-stride``): anywhere else a line
discontinuity is anatomy, not a seam, and a blurred, smoothed or BM3D output, whose residual
holds the input's edges, would be a false alarm (a Gaussian-blurred series was flagged "seam at
x=121" before). Without a known tile grid the seam z-scores are still tabulated but cannot flag.

Slice score = max ``ratio_db``; a slice is flagged when the score or the seam z exceeds the
thresholds in :data:`DEFAULT_THRESHOLDS` (chosen by ``benchmarks/calibrate_artifacts.py``,
see docs/evaluation.md). A patient is flagged when at least ``patient_fraction`` of its slices
are, or when the seam test on the slice-averaged line energies exceeds ``seam_z_pooled``, with
the evidence (which frequency, how strong, in how many slices).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import ndimage as ndi

SUSPECT_PERIODS_PX: tuple[int, ...] = (2, 4, 8, 16)
_BG_NEAR, _BG_FAR = 3, 10
_MIN_BINS = 6  # ignore frequencies below 6 cycles per image (anatomy dominates there)
_EDGE_SKIP = 4
_MIN_BLOCKS = 3


@dataclass(frozen=True)
class ArtifactThresholds:
    """Decision thresholds (see the calibration table in docs/evaluation.md)."""

    score_db: float = 14.0
    seam_z: float = 20.0
    seam_z_pooled: float = 20.0
    patient_fraction: float = 0.25


DEFAULT_THRESHOLDS = ArtifactThresholds()


@dataclass(frozen=True)
class SpectralPeak:
    """One suspect frequency: ``period_px`` along ``axis`` and its power over background."""

    period_px: float
    axis: str  # "x", "y" or "xy" (diagonal, e.g. a checkerboard)
    fy: float  # cycles/px
    fx: float
    ratio_db: float


@dataclass(frozen=True)
class SeamResult:
    """Strongest line discontinuity of a residual: robust z-score and where (``x=c``/``y=r``)."""

    z: float
    line: str
    z_x: np.ndarray  # per column boundary c (between c-1 and c), index 0 <-> c = 1
    z_y: np.ndarray
    energy_x: np.ndarray  # raw line energies (HU^2), averaged over slices for the patient test
    energy_y: np.ndarray


@dataclass(frozen=True)
class SliceArtifact:
    score_db: float
    top: SpectralPeak | None
    seam: SeamResult
    flagged: bool


@dataclass(frozen=True)
class PatientArtifact:
    n_slices: int
    n_flagged: int
    flagged: bool
    evidence: str
    top_period_px: float
    top_axis: str
    median_score_db: float
    max_seam_z: float

    @property
    def fraction_flagged(self) -> float:
        return self.n_flagged / self.n_slices if self.n_slices else float("nan")


def residual_power(residual: np.ndarray) -> np.ndarray:
    """Periodogram of the de-meaned, 2-D Hann-windowed residual (not shifted: DC at [0, 0])."""
    if residual.ndim != 2:
        raise ValueError(f"residual: expected a 2-D slice, found shape {residual.shape}")
    h, w = residual.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    x = (residual - residual.mean()) * win
    return np.abs(np.fft.fft2(x)) ** 2


def _suspect_freqs(n: int, periods: tuple[float, ...]) -> dict[float, float]:
    """Frequency (cycles/px) -> the period it is attributed to (its reduced fundamental)."""
    out: dict[float, float] = {}
    for p in periods:
        k = 1
        while k / p <= 0.5 + 1e-12:
            f = round(k / p, 9)
            if f * n >= _MIN_BINS:
                period = float(Fraction(k, int(p)).denominator) if float(p).is_integer() else p
                out[f] = min(period, out.get(f, period))
            k += 1
    return out


def _line_background(power: np.ndarray, ky: int, kx: int) -> float:
    h, w = power.shape
    d = np.arange(_BG_NEAR, _BG_FAR + 1)
    offs = np.concatenate([-d, d])
    row = power[ky % h, (kx + offs) % w]
    col = power[(ky + offs) % h, kx % w]
    return float(max(np.median(row), np.median(col)))


def spectral_peaks(
    residual: np.ndarray,
    periods: tuple[float, ...] = SUSPECT_PERIODS_PX,
    power: np.ndarray | None = None,
) -> list[SpectralPeak]:
    """Peak-over-background ratio at every suspect frequency of one residual slice."""
    pw = residual_power(residual) if power is None else power
    h, w = pw.shape
    tiny = np.finfo(np.float64).tiny
    peaks: list[SpectralPeak] = []
    fy_set, fx_set = _suspect_freqs(h, periods), _suspect_freqs(w, periods)
    cands: list[tuple[str, float, float, float]] = []
    for f, p in fx_set.items():
        cands.append(("x", 0.0, f, p))
    for f, p in fy_set.items():
        cands.append(("y", f, 0.0, p))
    for f, p in fx_set.items():
        if f in fy_set:
            cands += [("xy", f, f, p), ("xy", f, -f, p)]
    for axis, fy, fx, p in cands:
        ky, kx = round(fy * h), round(fx * w)
        exact = abs(fy * h - ky) < 1e-6 and abs(fx * w - kx) < 1e-6
        r = 0 if exact else 1  # off-grid frequencies (tile stride) leak: take the 3x3 max
        ys, xs = np.arange(ky - r, ky + r + 1) % h, np.arange(kx - r, kx + r + 1) % w
        peak = float(pw[np.ix_(ys, xs)].max())
        bg = _line_background(pw, ky, kx)
        ratio = 10.0 * np.log10(max(peak, tiny) / max(bg, tiny))
        peaks.append(SpectralPeak(p, axis, fy, fx, float(ratio)))
    return peaks


def _line_z(energy: np.ndarray) -> np.ndarray:
    """Robust z per line vs a running median of valid neighbours; NaN (invalid) lines get 0."""
    z = np.zeros(energy.shape, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(energy))
    valid = valid[(valid >= _EDGE_SKIP - 1) & (valid < len(energy) - _EDGE_SKIP + 1)]
    if valid.size < 8:
        return z
    e = energy[valid]
    dev = e - ndi.median_filter(e, size=33, mode="nearest")
    mad = float(np.median(np.abs(dev - np.median(dev))))
    scale = 1.4826 * mad if mad > 0 else (float(np.std(dev)) or 1.0)
    z[valid] = dev / scale
    return z


def _line_energy(jumps: np.ndarray, block: int) -> np.ndarray:
    """Median square of the block-averaged signed jumps along axis 0 -> one value per line."""
    h, w = jumps.shape
    nb = max(1, int(np.ceil(h / block)))
    padded = np.full((nb * block, w), np.nan)
    padded[:h] = jumps
    blocks = padded.reshape(nb, block, w)
    valid = np.isfinite(blocks).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks outside the body
        means = np.nanmean(blocks, axis=1)
    means[valid < block // 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        energy = np.nanmedian(means * means, axis=0)
    energy[np.isfinite(means).sum(axis=0) < _MIN_BLOCKS] = np.nan  # too short inside the body
    return np.asarray(energy)


def seam_scan(
    residual: np.ndarray, mask: np.ndarray | None = None, block_px: int = 32
) -> SeamResult:
    """Robust z-score of the signed jump energy across every column and row boundary.

    A tile seam is an offset between neighbouring tiles: along the border the jump between the
    two lines has a consistent sign within each tile, so the jumps are averaged in blocks of
    ``block_px`` pixels along the line (noise averages out, the offset does not), squared, and
    the median over blocks taken (an anatomical edge covers a few blocks, a seam all of them).
    Lines are compared with a running median over 33 lines.
    """
    r = residual.astype(np.float64)
    m = np.ones_like(r, dtype=bool) if mask is None else mask.astype(bool)
    jx = np.where(m[:, 1:] & m[:, :-1], np.diff(r, axis=1), np.nan)
    jy = np.where(m[1:, :] & m[:-1, :], np.diff(r, axis=0), np.nan)
    return seam_from_energy(_line_energy(jx, block_px), _line_energy(jy.T, block_px))


def seam_from_energy(energy_x: np.ndarray, energy_y: np.ndarray) -> SeamResult:
    """Robust z-scores and the strongest line from line energies (one slice or a slice mean)."""
    zx, zy = _line_z(energy_x), _line_z(energy_y)
    ix, iy = int(np.argmax(zx)), int(np.argmax(zy))
    if zx[ix] >= zy[iy]:
        return SeamResult(float(zx[ix]), f"x={ix + 1}", zx, zy, energy_x, energy_y)
    return SeamResult(float(zy[iy]), f"y={iy + 1}", zx, zy, energy_x, energy_y)


def tile_border_lines(length: int, stride: int, tile: int | None = None) -> np.ndarray:
    """Boundary positions ``c`` (between pixel ``c-1`` and ``c``) where a tile seam can be.

    With the tile size: the edges of every tile and of its core (``margin = (tile - stride)/2``)
    for the tile placement of :func:`pipeline.infer.tiling.tile_starts`; with the stride only:
    every multiple of it. One line of slack either side.
    """
    if tile is not None and tile > stride:
        from pipeline.infer.tiling import tile_starts

        m = (tile - stride) // 2
        starts = tile_starts(length, tile, m)
        cand = {c for s in starts for c in (s, s + m, s + tile - m, s + tile)}
    else:
        cand = set(range(stride, length, stride))
    out = {c + d for c in cand for d in (-1, 0, 1)}
    return np.array(sorted(c for c in out if 1 <= c < length), dtype=np.int64)


def restrict_seam(seam: SeamResult, lines_x: np.ndarray, lines_y: np.ndarray) -> SeamResult:
    """The strongest seam among the given boundary positions only (others do not count)."""

    def best(z: np.ndarray, lines: np.ndarray) -> tuple[float, int]:
        idx = lines - 1
        idx = idx[(idx >= 0) & (idx < len(z))]
        if idx.size == 0:
            return float("-inf"), 0
        k = int(idx[int(np.argmax(z[idx]))])
        return float(z[k]), k + 1

    zx, cx = best(seam.z_x, lines_x)
    zy, cy = best(seam.z_y, lines_y)
    if zx >= zy:
        return SeamResult(zx, f"x={cx}", seam.z_x, seam.z_y, seam.energy_x, seam.energy_y)
    return SeamResult(zy, f"y={cy}", seam.z_x, seam.z_y, seam.energy_x, seam.energy_y)


def seam_lines_for(
    shape: tuple[int, int], stride: int | None, tile: int | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Candidate seam boundaries ``(x lines, y lines)`` of a slice shape; None = no tile grid."""
    if not stride:
        return None
    return tile_border_lines(shape[1], stride, tile), tile_border_lines(shape[0], stride, tile)


def quiet_mask(
    input_hu: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    grad_factor: float = 3.0,
    sigma_px: float = 2.0,
    dilate_px: int = 3,
) -> np.ndarray:
    """``mask`` minus the neighbourhood of anatomical edges of the *input* image.

    A tile seam exists only in the denoised image, so pixels near edges of the input (where
    a denoiser's residual legitimately has line structure) can be left out of the seam test.
    Edge = gradient magnitude of the Gaussian-smoothed input above ``grad_factor`` times its
    median inside the mask (the median is set by noise and flat tissue, so the rule adapts to
    the noise level), dilated by ``dilate_px``.
    """
    g = ndi.gaussian_gradient_magnitude(input_hu.astype(np.float64), sigma_px)
    base = np.ones(input_hu.shape, bool) if mask is None else mask.astype(bool)
    level = float(np.median(g[base])) if base.any() else float(np.median(g))
    edges = ndi.binary_dilation(g > grad_factor * level, iterations=dilate_px)
    return np.asarray(base & ~edges)


def score_slice(
    residual: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    input_hu: np.ndarray | None = None,
    tile_stride_px: int | None = None,
    thresholds: ArtifactThresholds = DEFAULT_THRESHOLDS,
    check_seams: bool = True,
    tile_px: int | None = None,
) -> SliceArtifact:
    """Spectral + seam test of one residual slice -> score, strongest peak, flag.

    ``mask`` limits the seam test (e.g. the eroded body); with ``input_hu`` the neighbourhood
    of the input's edges is left out too (:func:`quiet_mask`). The seam test looks only at the
    tile borders of ``tile_stride_px`` (and ``tile_px``); without a stride, or with
    ``check_seams=False`` (slices denoised whole), the seam z is computed and reported but
    does not flag the slice.
    """
    periods: tuple[float, ...] = SUSPECT_PERIODS_PX
    if tile_stride_px:
        periods = (*periods, float(tile_stride_px))
    peaks = spectral_peaks(residual, periods)
    top = max(peaks, key=lambda p: p.ratio_db) if peaks else None
    score = top.ratio_db if top is not None else float("-inf")
    if input_hu is not None:
        mask = quiet_mask(input_hu, mask)
    seam = seam_scan(residual, mask)
    lines = seam_lines_for(residual.shape, tile_stride_px, tile_px) if check_seams else None
    if lines is not None:
        seam = restrict_seam(seam, *lines)
    flagged = score >= thresholds.score_db or (lines is not None and seam.z >= thresholds.seam_z)
    return SliceArtifact(score, top, seam, flagged)


def flag_patient(
    slices: list[SliceArtifact],
    thresholds: ArtifactThresholds = DEFAULT_THRESHOLDS,
    check_seams: bool = True,
    seam_lines: tuple[np.ndarray, np.ndarray] | None = None,
    seam_na: str = "whole-slice inference",
) -> PatientArtifact:
    """Aggregate slice results into a per-patient flag with a one-line evidence text.

    The pooled seam test looks only at ``seam_lines`` (the tile borders, from
    :func:`seam_lines_for`). ``check_seams=False`` or no ``seam_lines``: no tile grid is known
    (``seam_na`` says why: whole-slice inference, tile grid unknown), so seams cannot flag the
    patient (anatomy edges that persist across slices would otherwise read as a seam); the
    evidence says so.
    """
    n = len(slices)
    check_seams = check_seams and seam_lines is not None
    flagged = [s for s in slices if s.flagged]
    scores = np.array([s.score_db for s in slices]) if slices else np.array([np.nan])
    pooled = _pooled_seam(slices)
    if pooled is not None and seam_lines is not None:
        pooled = restrict_seam(pooled, *seam_lines)
    seam_max = pooled.z if pooled is not None else float("nan")
    is_flagged = n > 0 and len(flagged) >= max(1, int(np.ceil(thresholds.patient_fraction * n)))
    pooled_seam = check_seams and pooled is not None and pooled.z >= thresholds.seam_z_pooled
    is_flagged = is_flagged or pooled_seam
    spec = [s for s in flagged if s.score_db >= thresholds.score_db and s.top is not None]
    seams = [s for s in flagged if check_seams and s.seam.z >= thresholds.seam_z]
    parts: list[str] = []
    top_period, top_axis = float("nan"), ""
    if spec:
        (top_period, top_axis), count = Counter(
            (s.top.period_px, s.top.axis) for s in spec if s.top is not None
        ).most_common(1)[0]
        med = float(np.median([s.score_db for s in spec]))
        parts.append(
            f"period {top_period:g} px ({top_axis}) {med:.1f} dB above background "
            f"in {count}/{n} slices"
        )
    if seams:
        lines = Counter(s.seam.line for s in seams).most_common(1)[0][0]
        parts.append(
            f"seam at {lines} (z up to {max(s.seam.z for s in seams):.1f}) in {len(seams)}/{n} "
            "slices"
        )
    elif pooled_seam and pooled is not None:
        parts.append(f"seam at {pooled.line} (z {pooled.z:.1f} on the slice-averaged jumps)")
    if parts:
        evidence = "; ".join(parts)
    elif check_seams:
        evidence = "no periodic pattern or seam above threshold"
    else:
        evidence = f"no periodic pattern above threshold (seam test n/a: {seam_na})"
    return PatientArtifact(
        n_slices=n,
        n_flagged=len(flagged),
        flagged=bool(is_flagged),
        evidence=evidence,
        top_period_px=top_period,
        top_axis=top_axis,
        median_score_db=float(np.median(scores)),
        max_seam_z=float(seam_max),
    )


def _pooled_seam(slices: list[SliceArtifact]) -> SeamResult | None:
    """Seam test on line energies averaged over slices (a fixed tile border adds up)."""
    shapes = {(s.seam.energy_x.shape, s.seam.energy_y.shape) for s in slices}
    if not slices or len(shapes) != 1:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # lines outside the body in every slice
        ex = np.nanmean([s.seam.energy_x for s in slices], axis=0)
        ey = np.nanmean([s.seam.energy_y for s in slices], axis=0)
    return seam_from_energy(ex, ey)


def spectrum_for_plot(
    residual: np.ndarray, tile_stride_px: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[SpectralPeak]]:
    """Data for a report picture: ``(log10 power fftshifted, fy, fx, peaks)``; f in cycles/px."""
    power = residual_power(residual)
    periods: tuple[float, ...] = SUSPECT_PERIODS_PX
    if tile_stride_px:
        periods = (*periods, float(tile_stride_px))
    peaks = spectral_peaks(residual, periods, power=power)
    h, w = power.shape
    fy = np.fft.fftshift(np.fft.fftfreq(h))
    fx = np.fft.fftshift(np.fft.fftfreq(w))
    logp = np.log10(np.fft.fftshift(power) + np.finfo(np.float64).tiny)
    return logp, fy, fx, peaks
