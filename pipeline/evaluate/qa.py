"""QA of one patient: ROI HU, TG-233 noise/NPS (:mod:`.nps`), edge sharpness, grid/seam artifacts.

Works on aligned HU volumes by role (``low`` always; ``denoised``/``full`` when present) and
returns plain row dicts for the ``roi``, ``nps``, ``qa``, ``artifact_slices`` and ``artifacts``
tables (columns in docs/evaluation.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from pipeline.evaluate.artifacts import (
    DEFAULT_THRESHOLDS,
    ArtifactThresholds,
    SliceArtifact,
    flag_patient,
    score_slice,
    seam_lines_for,
)
from pipeline.evaluate.noise import find_uniform_rois, roi_stats
from pipeline.evaluate.nps import METHOD_TEXT, NoiseSpectrum, role_spectra
from pipeline.evaluate.sharpness import EdgeProfile, edge_spread
from pipeline.evaluate.task import Geometry, Insert, insert_rows

#: Body-mask erosion (px) before ROI search and the artifact seam test (keeps off the outline).
INNER_MARGIN_PX = 8


def ratio(num: float, den: float) -> float:
    """``num / den``, NaN when either is not finite or ``den`` is 0 (nothing to compare with)."""
    if not (np.isfinite(num) and np.isfinite(den)) or den == 0:
        return float("nan")
    return float(num / den)


def inner_mask(body: np.ndarray, margin_px: int = INNER_MARGIN_PX) -> np.ndarray:
    """Body mask eroded by ``margin_px`` in-plane (slice by slice for a volume)."""
    st = np.zeros((1, 3, 3), bool) if body.ndim == 3 else np.zeros((3, 3), bool)
    if body.ndim == 3:
        st[0] = ndi.generate_binary_structure(2, 1)
    else:
        st = ndi.generate_binary_structure(2, 1)
    return np.asarray(ndi.binary_erosion(body, structure=st, iterations=margin_px))


def noise_and_edges(
    patient: str,
    vols: dict[str, np.ndarray],
    body: np.ndarray,
    pixel_mm: tuple[float, float],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """ROI rows, NPS rows and per-role QA rows for one patient (ROIs chosen on ``low``)."""
    inner = inner_mask(body)
    roi_rows = _roi_rows(patient, vols, inner)
    spectra = role_spectra(vols, inner, pixel_mm)
    nps_rows: list[dict[str, Any]] = []
    qa_rows: list[dict[str, Any]] = []
    role_means: dict[str, np.ndarray] = {}
    for role, vol in vols.items():
        means = np.array([r["mean_hu"] for r in roi_rows if r["role"] == role])
        sds = np.array([r["sd_hu"] for r in roi_rows if r["role"] == role])
        for sp in spectra[role].values():
            nps_rows += _nps_rows(patient, role, sp)
        edge = edge_spread(vol, body, pixel_mm=float(np.mean(pixel_mm)))
        role_means[role] = means
        qa_rows.append(_qa_row(patient, role, means, sds, spectra[role], edge))
    _add_comparisons(qa_rows, role_means)
    return roi_rows, nps_rows, qa_rows


def _roi_rows(patient: str, vols: dict[str, np.ndarray], inner: np.ndarray) -> list[dict[str, Any]]:
    """Mean/SD of every role inside the uniform ROIs found on ``low``, slice by slice."""
    roi_rows: list[dict[str, Any]] = []
    for z in range(vols["low"].shape[0]):
        rois = find_uniform_rois(vols["low"][z], inner[z])
        for role, vol in vols.items():
            for k, (roi, (mean, sd)) in enumerate(zip(rois, roi_stats(vol[z], rois), strict=True)):
                roi_rows.append(
                    {
                        "patient": patient,
                        "slice_index": z,
                        "roi_id": k,
                        "y0": roi.y0,
                        "x0": roi.x0,
                        "size_px": roi.size,
                        "role": role,
                        "mean_hu": mean,
                        "sd_hu": sd,
                    }
                )
    return roi_rows


def _nps_rows(patient: str, role: str, sp: NoiseSpectrum) -> list[dict[str, Any]]:
    return [
        {
            "patient": patient,
            "role": role,
            "method": sp.method,
            "freq_cyc_mm": float(f),
            "nps_hu2_mm2": float(v),
            "n_patches": sp.n_patches,
            "roi_size_px": sp.roi_size_px,
        }
        for f, v in zip(sp.freq_cyc_mm, sp.nps_hu2_mm2, strict=True)
    ]


def _qa_row(
    patient: str,
    role: str,
    means: np.ndarray,
    sds: np.ndarray,
    spectra: dict[str, NoiseSpectrum],
    edge: EdgeProfile,
) -> dict[str, Any]:
    """One role's QA row: ROI HU, TG-233 noise and NPS (adjacent-slice and minus-full), edge."""
    adj = spectra.get("adjacent")
    paired = spectra.get("minus_full")
    return {
        "patient": patient,
        "role": role,
        "n_rois": int(means.size),
        "roi_mean_hu": float(means.mean()) if means.size else float("nan"),
        "roi_sd_hu": float(sds.mean()) if sds.size else float("nan"),
        "noise_method": METHOD_TEXT["adjacent"] if adj else "n/a (one slice)",
        "nps_roi_px": adj.roi_size_px if adj else 0,
        "nps_n_patches": adj.n_patches if adj else 0,
        "noise_sd_hu": adj.noise_sd_hu if adj else float("nan"),
        "nps_mean_freq_cyc_mm": adj.mean_freq_cyc_mm if adj else float("nan"),
        "nps_peak_freq_cyc_mm": adj.peak_freq_cyc_mm if adj else float("nan"),
        "diff_full_sd_hu": paired.noise_sd_hu if paired else float("nan"),
        "diff_full_nps_mean_freq_cyc_mm": paired.mean_freq_cyc_mm if paired else float("nan"),
        "edge_10_90_mm": edge.rise_10_90_mm,
        "edge_height_hu": edge.height_hu,
    }


def _add_comparisons(qa_rows: list[dict[str, Any]], role_means: dict[str, np.ndarray]) -> None:
    """HU bias against ``low`` and noise/NPS ratios against ``low`` and ``full``, in place."""
    by_role = {r["role"]: r for r in qa_rows}
    for row in qa_rows:
        role = row["role"]
        same = role_means[role].size == role_means["low"].size > 0
        diff = role_means[role] - role_means["low"] if same else np.array([np.nan])
        row["hu_bias_vs_low_hu"] = float(np.mean(diff))
        for ref in ("low", "full"):
            other = by_role.get(ref, {})
            row[f"sd_ratio_vs_{ref}"] = ratio(row["noise_sd_hu"], other.get("noise_sd_hu", np.nan))
            row[f"nps_mean_freq_ratio_vs_{ref}"] = ratio(
                row["nps_mean_freq_cyc_mm"], other.get("nps_mean_freq_cyc_mm", np.nan)
            )


def grid_artifacts(
    patient: str,
    vols: dict[str, np.ndarray],
    body: np.ndarray,
    *,
    tile_stride_px: int | None = None,
    thresholds: ArtifactThresholds = DEFAULT_THRESHOLDS,
    check_seams: bool = True,
    tile_px: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-slice and per-patient artifact rows for denoised-low (and denoised-full).

    Seams are tested only at the tile borders of ``tile_stride_px``/``tile_px``;
    ``check_seams=False`` when the denoise manifest says the slices were processed whole.
    """
    lines = seam_lines_for(vols["low"].shape[1:], tile_stride_px, tile_px) if check_seams else None
    seam_na = "whole-slice inference" if not check_seams else "tile grid unknown (--tile-stride)"
    if "denoised" not in vols:
        return [], []
    inner = inner_mask(body)
    slice_rows: list[dict[str, Any]] = []
    patient_rows: list[dict[str, Any]] = []
    for ref in ("low", "full"):
        if ref not in vols:
            continue
        name = f"denoised_minus_{ref}"
        results: list[SliceArtifact] = []
        for z in range(vols["denoised"].shape[0]):
            res = vols["denoised"][z].astype(np.float64) - vols[ref][z]
            sa = score_slice(
                res,
                inner[z],
                input_hu=vols["low"][z],
                tile_stride_px=tile_stride_px,
                thresholds=thresholds,
                check_seams=check_seams,
                tile_px=tile_px,
            )
            results.append(sa)
            slice_rows.append(
                {
                    "patient": patient,
                    "slice_index": z,
                    "residual": name,
                    "score_db": sa.score_db,
                    "top_period_px": sa.top.period_px if sa.top else float("nan"),
                    "top_axis": sa.top.axis if sa.top else "",
                    "seam_z": sa.seam.z,
                    "seam_line": sa.seam.line,
                    "flagged": sa.flagged,
                }
            )
        pa = flag_patient(results, thresholds, check_seams, seam_lines=lines, seam_na=seam_na)
        patient_rows.append(
            {
                "patient": patient,
                "residual": name,
                "n_slices": pa.n_slices,
                "n_flagged": pa.n_flagged,
                "fraction_flagged": pa.fraction_flagged,
                "flagged": pa.flagged,
                "evidence": pa.evidence,
                "top_period_px": pa.top_period_px,
                "top_axis": pa.top_axis,
                "median_score_db": pa.median_score_db,
                "max_seam_z": pa.max_seam_z,
            }
        )
    return slice_rows, patient_rows


#: Per-role ``qa`` columns: the pooled TTF50, then medians over inserts of CNR and d'.
TASK_COLUMNS = ("ttf50_cyc_mm", "cnr", "dprime_npw", "dprime_npwe")


def task_rows(
    patient: str,
    vols: dict[str, np.ndarray],
    inserts: list[Insert],
    geo: Geometry,
    nps_rows: list[dict[str, Any]],
    qa_rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Insert rows (TTF, CNR, d') and their per-role medians + ratios added to ``qa_rows``."""
    noise: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    sd = {r["role"]: float(r["noise_sd_hu"]) for r in qa_rows}
    for role in vols:
        rows = [r for r in nps_rows if r["role"] == role and r["method"] == "adjacent"]
        if rows:
            noise[role] = (
                np.array([r["freq_cyc_mm"] for r in rows]),
                np.array([r["nps_hu2_mm2"] for r in rows]),
                sd.get(role, float("nan")),
            )
    rows, pooled = insert_rows(patient, vols, inserts, geo, noise) if inserts else ([], {})
    for q in qa_rows:
        mine = [r for r in rows if r["role"] == q["role"]]
        fit = pooled.get(q["role"])
        q["n_inserts"] = sum(1 for r in mine if r["n_slices_used"] > 0)
        q["ttf50_cyc_mm"] = fit.ttf50_cyc_mm if fit else float("nan")
        q["psf_sd_mm"] = fit.psf_sd_mm if fit else float("nan")
        q["ttf_method"] = "pooled erfc ESF fit over inserts" if fit else "n/a (no inserts)"
        for c in TASK_COLUMNS[1:]:
            vals = np.array([r[c] for r in mine], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            q[c] = float(np.median(vals)) if vals.size else float("nan")
    by_role = {q["role"]: q for q in qa_rows}
    for q in qa_rows:
        for ref in ("low", "full"):
            other = by_role.get(ref, {})
            for c in ("ttf50_cyc_mm", "dprime_npwe", "dprime_npw"):
                q[f"{c.replace('_cyc_mm', '')}_ratio_vs_{ref}"] = ratio(
                    q[c], other.get(c, float("nan"))
                )
    return rows
