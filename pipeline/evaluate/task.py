"""Task-based image quality from circular inserts: TTF, CNR and detectability d' (AAPM TG-233).

Inputs are inserts of known centre, radius and contrast (the demo cohort's lesions, recorded in
each patient's ``pair.json``; any ``inserts.json`` of the same form). For each insert and role:

* **TTF** (task transfer function, Richard et al. 2012; TG-233 section 5): every pixel within
  ``TTF_BAND_MM`` of the insert's edge in the slices that cut the insert near its equator gives
  one ESF sample at its signed distance to the edge (the radial "oversampled" ESF). The ESF is
  fitted by least squares with ``B + C/2 erfc(d / (sqrt(2) s))`` (a disk blurred by a Gaussian
  PSF of SD ``s``), so the TTF is ``exp(-2 pi^2 s^2 f^2)`` and ``TTF50 = sqrt(ln 2 / 2) / (pi s)``
  cycles/mm. A fit whose ``s`` has a relative standard error above ``MAX_REL_SE`` is not a
  measurement (noise too high for that contrast) and is reported as NaN. Low-contrast inserts
  are fitted separately from high-contrast ones, so a non-linear denoiser's contrast-dependent
  resolution shows.
* **CNR**: ``|mean inside (0.7 r) - mean in the annulus 1.4-2.2 r|`` over the role's noise SD
  (TG-233 noise-only SD, :mod:`pipeline.evaluate.nps`).
* **d'** of the task "detect this disk" (TG-233 eq. 10-11; all functions radial, so the 2-D
  integrals are ``int g(f) 2 pi f df``):
  ``W(f) = C R J1(2 pi R f) / f`` (the disk's Fourier transform),
  NPW: ``d'^2 = [int W^2 TTF^2]^2 / int W^2 TTF^2 NPS``;
  NPWE: ``d'^2 = [int W^2 TTF^2 E^2]^2 / int W^2 TTF^2 NPS E^4`` with the eye filter
  ``E(rho) = rho^1.3 exp(-c rho^2)`` peaking at 4 cycles/degree (Eckstein et al. 1998), image
  frequencies mapped to the eye at :data:`VIEW_DISTANCE_MM` and display magnification 1.
  A disk of contrast C and radius R in white noise of variance sigma^2 (TTF = 1) has
  ``d'_NPW^2 = C^2 pi R^2 / (sigma^2 dx dy)`` (tested).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, special

log = logging.getLogger(__name__)

#: ESF samples within this distance of the insert edge (mm, both sides).
TTF_BAND_MM = 6.0
#: Slices whose cross-section radius is at least this fraction of the insert radius are used.
MIN_SECTION_FRACTION = 0.8
#: A fitted PSF SD with a larger relative standard error is not reported.
MAX_REL_SE = 0.25
#: TTF50 of a Gaussian PSF of SD s (mm): sqrt(ln 2 / 2) / (pi s).
TTF50_FACTOR = math.sqrt(math.log(2.0) / 2.0) / math.pi
#: Viewing distance for the NPWE eye filter (mm) and the eye filter's peak (cycles/degree).
VIEW_DISTANCE_MM = 500.0
EYE_PEAK_CYC_DEG = 4.0


@dataclass(frozen=True)
class Insert:
    """A spherical (or cylindrical when ``half_length_mm`` is inf) insert in LPS mm."""

    center_lps_mm: tuple[float, float, float]
    radius_mm: float
    contrast_hu: float
    name: str = ""


def inserts_from_pair_json(path: Path) -> list[Insert]:
    """Lesions of a demo-cohort ``pair.json`` as LPS inserts.

    The simulator's phantom frame has x, y at the image centre and z running head to foot; the
    cohort writes DICOM with ``LPS = (x, y, -z)`` (:mod:`pipeline.simulate.cohort`).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: not a readable pair.json (%s); no inserts", path, exc)
        return []
    out = []
    for k, les in enumerate(data.get("lesions") or []):
        try:
            out.append(
                Insert(
                    (float(les["x_mm"]), float(les["y_mm"]), -float(les["z_mm"])),
                    float(les["radius_mm"]),
                    float(les["contrast_hu"]),
                    name=f"lesion {k + 1}",
                )
            )
        except (KeyError, TypeError, ValueError):
            log.warning("%s: lesion %d lacks x/y/z/radius/contrast; skipped", path, k + 1)
    return out


def find_inserts(series_dir: Path, low_series_uid: str) -> list[Insert]:
    """Inserts recorded beside a low-dose series (its folder or up to two parents)."""
    for d in (series_dir, *list(series_dir.parents)[:2]):
        p = d / "pair.json"
        if p.is_file():
            try:
                uid = json.loads(p.read_text(encoding="utf-8")).get("low_series_uid")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                uid = None
            if uid in (None, low_series_uid):
                return inserts_from_pair_json(p)
    return []


@dataclass(frozen=True)
class Geometry:
    """What is needed to map LPS mm to voxel indices of an aligned ``(Z, Y, X)`` volume."""

    origin_mm: np.ndarray  # (3,)
    direction: np.ndarray  # (3, 3) columns: row dir, column dir, normal
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    slice_pos_mm: np.ndarray  # (Z,) position of each slice along the normal


def _section(ins: Insert, geo: Geometry) -> tuple[float, float, np.ndarray]:
    """(column, row) of the insert centre in px and its cross-section radius per slice (mm)."""
    d = np.asarray(ins.center_lps_mm) - geo.origin_mm
    col = float(d @ geo.direction[:, 0]) / geo.spacing_mm[2]
    row = float(d @ geo.direction[:, 1]) / geo.spacing_mm[1]
    dn = float(np.asarray(ins.center_lps_mm) @ geo.direction[:, 2]) - geo.slice_pos_mm
    r2 = ins.radius_mm**2 - dn**2
    return col, row, np.sqrt(np.clip(r2, 0.0, None))


def esf_samples(
    hu: np.ndarray, ins: Insert, geo: Geometry
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Signed edge distances (mm) and HU of every ESF pixel, and the slices used."""
    col, row, rz = _section(ins, geo)
    use = [int(k) for k in np.flatnonzero(rz >= MIN_SECTION_FRACTION * ins.radius_mm)]
    dy, dx = geo.spacing_mm[1], geo.spacing_mm[2]
    ny, nx = hu.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.hypot((yy - row) * dy, (xx - col) * dx)
    ds, vs = [], []
    for k in use:
        d = r - rz[k]
        sel = np.abs(d) <= min(TTF_BAND_MM, rz[k])
        ds.append(d[sel])
        vs.append(hu[k][sel].astype(np.float64))
    if not ds:
        return np.zeros(0), np.zeros(0), []
    return np.concatenate(ds), np.concatenate(vs), use


def _esf_model(d: np.ndarray, b: float, c: float, s: float) -> np.ndarray:
    return b + 0.5 * c * special.erfc(d / (math.sqrt(2.0) * abs(s)))


@dataclass(frozen=True)
class TtfFit:
    psf_sd_mm: float  # NaN when not measurable
    psf_sd_rel_se: float
    contrast_hu: float  # fitted (inside - outside)
    background_hu: float
    ttf50_cyc_mm: float
    n_samples: int


NO_FIT = TtfFit(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), 0)


def fit_ttf(d_mm: np.ndarray, hu: np.ndarray, pixel_mm: float) -> TtfFit:
    """Fit the erfc edge model to radial ESF samples; NaN TTF when the fit is not determined."""
    if d_mm.size < 20:
        return NO_FIT
    outside, inside = hu[d_mm > 2 * pixel_mm], hu[d_mm < -2 * pixel_mm]
    if outside.size < 5 or inside.size < 5:
        return NO_FIT
    p0 = (float(np.median(outside)), float(np.median(inside) - np.median(outside)), pixel_mm)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, pcov = optimize.curve_fit(_esf_model, d_mm, hu, p0=p0, maxfev=4000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return NO_FIT
    b, c, s = (float(v) for v in popt)
    s = abs(s)
    se = float(np.sqrt(pcov[2, 2])) if np.all(np.isfinite(pcov)) else float("inf")
    rel = se / s if s > 0 else float("inf")
    ok = np.isfinite(rel) and rel <= MAX_REL_SE and 0.05 * pixel_mm < s < 10 * pixel_mm
    return TtfFit(
        psf_sd_mm=s if ok else float("nan"),
        psf_sd_rel_se=rel,
        contrast_hu=c,
        background_hu=b,
        ttf50_cyc_mm=TTF50_FACTOR / s if ok else float("nan"),
        n_samples=int(d_mm.size),
    )


def fit_ttf_joint(samples: list[tuple[np.ndarray, np.ndarray]], pixel_mm: float) -> TtfFit:
    """One PSF SD shared by several inserts (each with its own background and contrast).

    The patient-level TTF: pooling every insert's ESF samples makes the fit stable where a
    single low-contrast insert is too noisy. ``contrast_hu``/``background_hu`` are NaN here.
    """
    parts = [(d, v) for d, v in samples if d.size >= 20]
    if not parts:
        return NO_FIT
    d = np.concatenate([p[0] for p in parts])
    v = np.concatenate([p[1] for p in parts])
    idx = np.concatenate([np.full(p[0].size, k) for k, p in enumerate(parts)])
    k = len(parts)
    p0 = [pixel_mm]
    for dd, vv in parts:
        out, ins = vv[dd > 2 * pixel_mm], vv[dd < -2 * pixel_mm]
        if out.size < 5 or ins.size < 5:
            return NO_FIT
        p0 += [float(np.median(out)), float(np.median(ins) - np.median(out))]

    def model(x: np.ndarray, *p: float) -> np.ndarray:
        b = np.asarray(p[1::2])[idx]
        c = np.asarray(p[2::2])[idx]
        return b + 0.5 * c * special.erfc(x / (math.sqrt(2.0) * abs(p[0])))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, pcov = optimize.curve_fit(model, d, v, p0=p0, maxfev=2000 * (k + 1))
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return NO_FIT
    s = abs(float(popt[0]))
    se = float(np.sqrt(pcov[0, 0])) if np.all(np.isfinite(pcov)) else float("inf")
    rel = se / s if s > 0 else float("inf")
    ok = np.isfinite(rel) and rel <= MAX_REL_SE and 0.05 * pixel_mm < s < 10 * pixel_mm
    return TtfFit(
        psf_sd_mm=s if ok else float("nan"),
        psf_sd_rel_se=rel,
        contrast_hu=float("nan"),
        background_hu=float("nan"),
        ttf50_cyc_mm=TTF50_FACTOR / s if ok else float("nan"),
        n_samples=int(d.size),
    )


def gaussian_ttf(freq_cyc_mm: np.ndarray, psf_sd_mm: float) -> np.ndarray:
    """TTF of a Gaussian PSF of SD ``psf_sd_mm``."""
    return np.exp(-2.0 * math.pi**2 * psf_sd_mm**2 * np.asarray(freq_cyc_mm) ** 2)


def cnr(hu: np.ndarray, ins: Insert, geo: Geometry, noise_sd_hu: float) -> float:
    """|inside - annulus| mean over the noise SD, on the slices the TTF uses (NaN if none)."""
    col, row, rz = _section(ins, geo)
    use = np.flatnonzero(rz >= MIN_SECTION_FRACTION * ins.radius_mm)
    if use.size == 0 or not np.isfinite(noise_sd_hu) or noise_sd_hu <= 0:
        return float("nan")
    ny, nx = hu.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.hypot((yy - row) * geo.spacing_mm[1], (xx - col) * geo.spacing_mm[2])
    ins_v, bg_v = [], []
    for k in use:
        ins_v.append(hu[k][r <= 0.7 * rz[k]])
        bg_v.append(hu[k][(r >= 1.4 * rz[k]) & (r <= 2.2 * rz[k])])
    a, b = np.concatenate(ins_v), np.concatenate(bg_v)
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(abs(a.mean() - b.mean()) / noise_sd_hu)


def disk_task(freq_cyc_mm: np.ndarray, radius_mm: float, contrast_hu: float) -> np.ndarray:
    """|W(f)|: Fourier transform of a disk of ``contrast_hu`` and ``radius_mm`` (HU mm^2)."""
    f = np.asarray(freq_cyc_mm, dtype=np.float64)
    x = 2.0 * math.pi * radius_mm * f
    with np.errstate(invalid="ignore", divide="ignore"):
        safe_f = np.where(f > 0, f, 1.0)
        w = np.where(f > 0, radius_mm * special.j1(x) / safe_f, math.pi * radius_mm**2)
    return abs(contrast_hu) * w


def eye_filter(freq_cyc_mm: np.ndarray, view_distance_mm: float = VIEW_DISTANCE_MM) -> np.ndarray:
    """NPWE eye filter ``rho^1.3 exp(-c rho^2)`` (rho in cycles/degree), peak normalised to 1."""
    rho = np.asarray(freq_cyc_mm) * view_distance_mm * math.pi / 180.0
    c = 1.3 / (2.0 * EYE_PEAK_CYC_DEG**2)
    e = rho**1.3 * np.exp(-c * rho**2)
    peak = EYE_PEAK_CYC_DEG**1.3 * math.exp(-c * EYE_PEAK_CYC_DEG**2)
    return e / peak


def dprime(
    freq_cyc_mm: np.ndarray,
    ttf: np.ndarray,
    nps_hu2_mm2: np.ndarray,
    radius_mm: float,
    contrast_hu: float,
    *,
    observer: str = "npw",
) -> float:
    """Detectability index of a disk task on a radial frequency grid (TG-233 eq. 10-11)."""
    f = np.asarray(freq_cyc_mm, dtype=np.float64)
    w2t2 = disk_task(f, radius_mm, contrast_hu) ** 2 * np.asarray(ttf) ** 2
    ring = 2.0 * math.pi * f
    if observer == "npw":
        num = np.trapezoid(w2t2 * ring, f) ** 2
        den = np.trapezoid(w2t2 * nps_hu2_mm2 * ring, f)
    elif observer == "npwe":
        e2 = eye_filter(f) ** 2
        num = np.trapezoid(w2t2 * e2 * ring, f) ** 2
        den = np.trapezoid(w2t2 * nps_hu2_mm2 * e2 * e2 * ring, f)
    else:
        raise ValueError(f"observer must be 'npw' or 'npwe', found {observer!r}")
    return float(math.sqrt(num / den)) if den > 0 else float("nan")


def nps_on_grid(freq: np.ndarray, nps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A measured radial NPS on ``grid`` (linear interpolation, held flat below its first bin)."""
    return np.interp(grid, freq, nps, left=nps[0], right=nps[-1])


def frequency_grid(pixel_mm: float, n: int = 400) -> np.ndarray:
    """0 .. Nyquist on ``n`` points (cycles/mm)."""
    return np.linspace(0.0, 0.5 / pixel_mm, n)


def insert_rows(
    patient: str,
    vols: dict[str, np.ndarray],
    inserts: list[Insert],
    geo: Geometry,
    noise: dict[str, tuple[np.ndarray, np.ndarray, float]],
) -> tuple[list[dict[str, Any]], dict[str, TtfFit]]:
    """Rows per insert and role (own TTF fit, CNR, d') and the pooled TTF fit of each role.

    d' uses the role's pooled TTF (all inserts, one PSF) and its noise-only NPS:
    ``noise[role] = (freq, nps, noise_sd)`` from :mod:`pipeline.evaluate.nps`.
    """
    pixel = float(np.mean(geo.spacing_mm[1:]))
    grid = frequency_grid(pixel)
    rows: list[dict[str, Any]] = []
    pooled: dict[str, TtfFit] = {}
    for role, vol in vols.items():
        samples = [esf_samples(vol, ins, geo) for ins in inserts]
        joint = fit_ttf_joint([(d, v) for d, v, _ in samples], pixel)
        pooled[role] = joint
        freq, nps, sd = noise.get(role, (np.zeros(0), np.zeros(0), float("nan")))
        for ins, (d, v, used) in zip(inserts, samples, strict=True):
            fit = fit_ttf(d, v, pixel)
            col, row, _ = _section(ins, geo)
            dp = {"npw": float("nan"), "npwe": float("nan")}
            if used and len(freq) and np.isfinite(joint.psf_sd_mm):
                ttf = gaussian_ttf(grid, joint.psf_sd_mm)
                ng = nps_on_grid(freq, nps, grid)
                for obs in dp:
                    dp[obs] = dprime(grid, ttf, ng, ins.radius_mm, ins.contrast_hu, observer=obs)
            rows.append(
                {
                    "patient": patient,
                    "insert": ins.name,
                    "role": role,
                    "radius_mm": ins.radius_mm,
                    "contrast_hu": ins.contrast_hu,
                    "col_px": col,
                    "row_px": row,
                    "normal_mm": float(np.asarray(ins.center_lps_mm) @ geo.direction[:, 2]),
                    "n_slices_used": len(used),
                    "fitted_contrast_hu": fit.contrast_hu,
                    "psf_sd_mm": fit.psf_sd_mm,
                    "psf_sd_rel_se": fit.psf_sd_rel_se,
                    "ttf50_cyc_mm": fit.ttf50_cyc_mm,
                    "cnr": cnr(vol, ins, geo, sd) if used else float("nan"),
                    "dprime_npw": dp["npw"],
                    "dprime_npwe": dp["npwe"],
                }
            )
    return rows, pooled
