"""No-reference QA of one patient: ROI HU/noise, NPS, edge sharpness, grid/seam artifacts.

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
)
from pipeline.evaluate.noise import (
    find_uniform_rois,
    nps_mean_peak,
    radial_nps,
    roi_stats,
)
from pipeline.evaluate.sharpness import edge_spread

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
    roi_rows: list[dict[str, Any]] = []
    patches: dict[str, list[np.ndarray]] = {r: [] for r in vols}
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
                patches[role].append(roi.take(vol[z]).astype(np.float64))
    nps_rows: list[dict[str, Any]] = []
    qa_rows: list[dict[str, Any]] = []
    role_means: dict[str, np.ndarray] = {}
    role_sd: dict[str, float] = {}
    role_nps: dict[str, float] = {}
    for role, vol in vols.items():
        means = np.array([r["mean_hu"] for r in roi_rows if r["role"] == role])
        sds = np.array([r["sd_hu"] for r in roi_rows if r["role"] == role])
        mean_f = peak_f = float("nan")
        if patches[role]:
            freq, nps = radial_nps(np.stack(patches[role]), pixel_mm)
            mean_f, peak_f = nps_mean_peak(freq, nps)
            nps_rows += [
                {"patient": patient, "role": role, "freq_cyc_mm": float(f), "nps_hu2_mm2": float(v)}
                for f, v in zip(freq, nps, strict=True)
            ]
        edge = edge_spread(vol, body, pixel_mm=float(np.mean(pixel_mm)))
        role_means[role] = means
        role_sd[role] = float(sds.mean()) if sds.size else float("nan")
        role_nps[role] = mean_f
        qa_rows.append(
            {
                "patient": patient,
                "role": role,
                "n_rois": int(means.size),
                "roi_mean_hu": float(means.mean()) if means.size else float("nan"),
                "roi_sd_hu": role_sd[role],
                "nps_mean_freq_cyc_mm": mean_f,
                "nps_peak_freq_cyc_mm": peak_f,
                "edge_10_90_mm": edge.rise_10_90_mm,
                "edge_height_hu": edge.height_hu,
            }
        )
    for row in qa_rows:
        role = row["role"]
        same = role_means[role].size == role_means["low"].size > 0
        diff = role_means[role] - role_means["low"] if same else np.array([np.nan])
        row["hu_bias_vs_low_hu"] = float(np.mean(diff))
        row["sd_ratio_vs_low"] = ratio(role_sd[role], role_sd["low"])
        row["nps_mean_freq_ratio_vs_low"] = ratio(role_nps[role], role_nps["low"])
    return roi_rows, nps_rows, qa_rows


def grid_artifacts(
    patient: str,
    vols: dict[str, np.ndarray],
    body: np.ndarray,
    *,
    tile_stride_px: int | None = None,
    thresholds: ArtifactThresholds = DEFAULT_THRESHOLDS,
    check_seams: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-slice and per-patient artifact rows for denoised-low (and denoised-full).

    ``check_seams=False`` when the denoise manifest says the slices were processed whole.
    """
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
        pa = flag_patient(results, thresholds, check_seams)
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
