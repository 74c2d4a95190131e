"""Template context of one patient page: every number comes from the evaluation tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pipeline.report import figures
from pipeline.report.config import ReportConfig, Rule
from pipeline.report.images import PatientImages, pick_slices
from pipeline.report.tables import EvalOutput
from pipeline.report.verdict import RuleResult, Verdict

RESIDUAL_ROLES = {
    "denoised_minus_low": ("denoised", "low"),
    "denoised_minus_full": ("denoised", "full"),
}


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers as the pages show them: ``digits`` decimals below 10 (SSIM 0.956), 2 below 100
    (PSNR 36.94 dB), 1 above; tiny values in ``g`` form; ``inf``/missing spelled out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.{digits}g}"
    decimals = digits if abs(v) < 10 else 2 if abs(v) < 100 else 1
    return f"{v:.{decimals}f}"


def rule_rows(
    rules: list[Rule], results: tuple[RuleResult, ...] | None = None
) -> list[dict[str, Any]]:
    """Rows of the rules table (with values and status when ``results`` are given)."""
    rows = []
    items = results if results is not None else tuple(RuleResult(r, None, False) for r in rules)
    for res in items:
        r = res.rule
        what = f"|{r.column or r.metric}|" if r.absolute else (r.column or r.metric or "flag")
        rows.append(
            {
                "id": r.id,
                "explain": r.explain,
                "condition": f"{what} {r.op} {r.threshold:g}"
                + (f" ({r.profile})" if r.profile else ""),
                "severity": r.severity.value,
                "value": fmt(res.value),
                "status": res.status,
                "status_class": res.status.replace("n/a", "na"),
            }
        )
    return rows


def baseline_names(ev: EvalOutput) -> list[str]:
    """Baselines of the evaluation (``--baseline``), in the order given."""
    return list((ev.summary.get("inputs") or {}).get("baselines") or {})


def metric_rows(ev: EvalOutput, patient: str) -> list[dict[str, Any]]:
    pp = ev.for_patient("per_patient", patient)
    if pp.empty:
        return []
    tests = ev.for_patient("tests", patient)
    rows = []
    for (profile, metric), grp in pp.groupby(["profile", "metric"], sort=False):
        by = {r["comparison"]: r for _, r in grp.iterrows()}
        low, den = by.get("low_vs_full"), by.get("denoised_vs_full")
        unit = str(grp["unit"].iloc[0])
        test_text = "—"
        if not tests.empty:
            t = tests[
                (tests["level"] == "patient")
                & (tests["profile"] == profile)
                & (tests["metric"] == metric)
            ]
            if len(t):
                tr = t.iloc[0]
                test_text = (
                    f"mean Δ {fmt(tr['mean_diff'])} [{fmt(tr['ci95_lo'])}, {fmt(tr['ci95_hi'])}]"
                    f" over {int(tr['n'])} {tr['n_unit']} ({tr['method']}), "
                    + ("improved" if bool(tr["improved"]) else "not improved")
                )
        low_mean = None if low is None else float(low["mean"])
        den_mean = None if den is None else float(den["mean"])
        extra = []
        for name in baseline_names(ev):
            b = by.get(f"{name}_vs_full")
            extra.append(
                {
                    "name": name,
                    "text": "—" if b is None else f"{fmt(b['mean'])} ± {fmt(b['sd'])}",
                    "value": "" if b is None else repr(float(b["mean"])),
                }
            )
        rows.append(
            {
                "profile": profile,
                "metric": metric,
                "unit": unit,
                "low": "—" if low is None else f"{fmt(low['mean'])} ± {fmt(low['sd'])}",
                "den": "—" if den is None else f"{fmt(den['mean'])} ± {fmt(den['sd'])}",
                "low_value": "" if low_mean is None else repr(low_mean),
                "den_value": "" if den_mean is None else repr(den_mean),
                "baselines": extra,
                "delta": "—"
                if low_mean is None or den_mean is None
                else f"{den_mean - low_mean:+.4g}",
                "test": test_text,
            }
        )
    return rows


QA_COLUMNS = (
    "n_rois",
    "roi_mean_hu",
    "hu_bias_vs_low_hu",
    "noise_sd_hu",
    "sd_ratio_vs_low",
    "sd_ratio_vs_full",
    "nps_mean_freq_cyc_mm",
    "nps_peak_freq_cyc_mm",
    "nps_mean_freq_ratio_vs_full",
    "edge_10_90_mm",
)
TASK_COLUMNS = (
    "n_inserts",
    "ttf50_cyc_mm",
    "ttf50_ratio_vs_full",
    "cnr",
    "dprime_npw",
    "dprime_npwe",
    "dprime_npwe_ratio_vs_low",
    "dprime_npwe_ratio_vs_full",
)
INSERT_COLUMNS = (
    "insert",
    "role",
    "radius_mm",
    "contrast_hu",
    "n_slices_used",
    "fitted_contrast_hu",
    "ttf50_cyc_mm",
    "cnr",
    "dprime_npw",
    "dprime_npwe",
)


def task_rows(ev: EvalOutput, patient: str) -> list[dict[str, Any]]:
    """Per-role TTF50 / CNR / d' cells (empty when the evaluation found no inserts)."""
    qa = ev.for_patient("qa", patient)
    if qa.empty or "ttf50_cyc_mm" not in qa.columns or not (qa["n_inserts"] > 0).any():
        return []
    return [
        {"role": r["role"], "cells": [r["role"]] + [fmt(r.get(c)) for c in TASK_COLUMNS]}
        for _, r in qa.iterrows()
    ]


def insert_table(ev: EvalOutput, patient: str) -> list[list[str]]:
    """One row per insert and role (contrast-dependent TTF, CNR, d')."""
    ins = ev.for_patient("inserts", patient)
    if ins.empty:
        return []
    return [
        [str(r["insert"]), str(r["role"])] + [fmt(r[c]) for c in INSERT_COLUMNS[2:]]
        for _, r in ins.iterrows()
    ]


def guardrail(ev: EvalOutput, patient: str) -> dict[str, Any]:
    """The input's review reasons/notes and acquisition facts (empty when not evaluated)."""
    g = ev.for_patient("guardrails", patient)
    if g.empty:
        return {}
    r = g.iloc[0]

    def split(v: Any) -> list[str]:
        return [x for x in str(v if isinstance(v, str) else "").split("; ") if x]

    ctdi = r.get("ctdivol_mgy")
    kvp = r.get("kvp")
    scanner = " ".join(str(r.get(k) or "") for k in ("manufacturer", "model_name")).strip()
    return {
        "reasons": split(r.get("reasons")),
        "notes": split(r.get("notes")),
        "source": str(r.get("source", "")),
        "scanner": scanner or "not recorded",
        "kernel": str(r.get("kernel") or "") or "not recorded",
        "kvp": "not recorded" if pd.isna(kvp) else f"{float(kvp):g} kV",
        "ctdivol": "not recorded" if pd.isna(ctdi) else f"{float(ctdi):.3g} mGy",
        "pixel_mm": fmt(r.get("pixel_spacing_mm")),
        "slice_mm": fmt(r.get("slice_thickness_mm")),
    }


def _noise_method(ev: EvalOutput, patient: str) -> str:
    qa = ev.for_patient("qa", patient)
    if qa.empty or "noise_method" not in qa.columns:
        return ""
    return f"{qa['noise_method'].iloc[0]}, ROIs of {int(qa['nps_roi_px'].iloc[0])} px"


def qa_rows(ev: EvalOutput, patient: str) -> list[dict[str, Any]]:
    qa = ev.for_patient("qa", patient)
    return [
        {"role": r["role"], "cells": [r["role"]] + [fmt(r.get(c)) for c in QA_COLUMNS]}
        for _, r in qa.iterrows()
    ]


def artifact_items(
    ev: EvalOutput, patient: str, images: PatientImages, stride: int | None
) -> list[dict[str, Any]]:
    from pipeline.evaluate.artifacts import spectrum_for_plot

    art = ev.for_patient("artifacts", patient)
    slices = ev.for_patient("artifact_slices", patient)
    threshold = float(ev.summary.get("thresholds", {}).get("score_db", 10.0))
    items = []
    for _, a in art.iterrows():
        item = {
            "residual": a["residual"],
            "flagged": bool(a["flagged"]),
            "evidence": a["evidence"],
            "n_flagged": int(a["n_flagged"]),
            "n_slices": int(a["n_slices"]),
            "median_score": fmt(a["median_score_db"]),
            "max_seam_z": fmt(a["max_seam_z"]),
            "spectrum": "",
        }
        roles = RESIDUAL_ROLES.get(str(a["residual"]))
        rows = slices[slices["residual"] == a["residual"]] if not slices.empty else slices
        if roles and len(rows) and set(roles) <= set(images.volumes):
            worst = rows.sort_values("score_db", ascending=False).iloc[0]
            k = int(worst["slice_index"])
            residual = images.slice(roles[0], k) - images.slice(roles[1], k)
            logp, _, _, peaks = spectrum_for_plot(residual, stride)
            marks = [(p.fy, p.fx) for p in peaks if p.ratio_db >= threshold]
            marks += [(-fy, -fx) for fy, fx in marks]
            item["spectrum"] = figures.residual_spectrum(
                logp, marks, f"{a['residual']}, slice {k}: score {fmt(worst['score_db'])} dB"
            )
        items.append(item)
    return items


VIEW_ROLES = ("low", "denoised", "full")


def slice_name(images: PatientImages, k: int) -> str:
    """``z = 12.5 mm, InstanceNumber 7`` of slice ``k`` (low-dose order), as far as known."""
    from pipeline.data.pairs import slice_positions_mm

    vol = images.volumes.get("low") or next(iter(images.volumes.values()))
    z = float(slice_positions_mm(vol)[k])
    inst = None
    header = vol.slices[k].header if vol.slices else None
    if header is not None:
        inst = header.get("InstanceNumber")
    return f"z = {z:.1f} mm, InstanceNumber {inst if inst not in (None, '') else 'n/a'}"


def slice_view(
    ev: EvalOutput, patient: str, images: PatientImages, k: int, window: str
) -> dict[str, Any]:
    """Native-resolution low/denoised/full of slice ``k`` with the ROIs and inserts to draw."""
    from pipeline.data.pairs import slice_positions_mm

    roles = [r for r in VIEW_ROLES if r in images.volumes]
    h, w = images.slice(roles[0], k).shape
    roi = ev.for_patient("roi", patient)
    rois = []
    if not roi.empty:
        here = roi[roi["slice_index"] == k].drop_duplicates(["roi_id"])
        rois = [(int(r["x0"]), int(r["y0"]), int(r["size_px"])) for _, r in here.iterrows()]
    circles = []
    ins = ev.for_patient("inserts", patient)
    if not ins.empty and "col_px" in ins.columns:
        vol = images.volumes[roles[0]]
        pos = float(slice_positions_mm(vol)[k])
        px = float(vol.spacing_mm[2])
        for _, r in ins.drop_duplicates(["insert"]).iterrows():
            r2 = float(r["radius_mm"]) ** 2 - (pos - float(r["normal_mm"])) ** 2
            if r2 > 0:
                circles.append(
                    (float(r["col_px"]), float(r["row_px"]), (r2**0.5) / px, str(r["insert"]))
                )
    return {
        "name": slice_name(images, k),
        "window": window,
        "images": [
            {
                "role": role,
                "label": figures.ROLE_LABELS[role],
                "uri": figures.slice_png(images.slice(role, k), window),
                "w": w,
                "h": h,
            }
            for role in roles
        ],
        "rois": rois,
        "inserts": circles,
    }


def patient_context(
    ev: EvalOutput,
    patient: str,
    verdict: Verdict,
    images: PatientImages,
    cfg: ReportConfig,
) -> dict[str, Any]:
    """Everything the patient page shows; ``patient`` is the evaluation's key as shown (a
    pseudonym when the run pseudonymises: the tables are mapped before they get here)."""
    info = ev.patient_info(patient)
    per_slice = ev.for_patient("per_slice", patient)
    panels = []
    if images.volumes:
        for caption, k in pick_slices(
            per_slice, cfg.curve_profile, int(info.get("n_slices", 0)), cfg.n_representative
        ):
            hu = {role: images.slice(role, k) for role in images.volumes}
            view = slice_view(ev, patient, images, k, cfg.panel_windows[0])
            panels.append(
                {
                    "caption": f"{caption}: {view['name']} (slice index {k})",
                    "uri": figures.image_panel(hu, cfg.panel_windows),
                    "view": view,
                }
            )
    nps = ev.for_patient("nps", patient)
    roi = ev.for_patient("roi", patient)
    return {
        "patient": patient,
        "verdict": verdict.verdict,
        "reasons": verdict.reasons,
        "rule_results": rule_rows(cfg.rules, verdict.results),
        "metric_rows": metric_rows(ev, patient),
        "baselines": baseline_names(ev),
        "n_slices": info.get("n_slices"),
        "curves": figures.slice_curves(per_slice, cfg.curve_profile) if len(per_slice) else "",
        "panels": panels,
        "image_problem": images.problem,
        "qa_rows": qa_rows(ev, patient),
        "task_rows": task_rows(ev, patient),
        "insert_rows": insert_table(ev, patient),
        "noise_method": _noise_method(ev, patient),
        "guardrail": guardrail(ev, patient),
        "nps": figures.nps_curves(nps) if len(nps) else "",
        "roi_rows": [
            [
                int(r["slice_index"]),
                r["roi_id"],
                int(r["y0"]),
                int(r["x0"]),
                int(r["size_px"]),
                r["role"],
                fmt(r["mean_hu"]),
                fmt(r["sd_hu"]),
            ]
            for _, r in roi.iterrows()
        ],
        "artifacts": artifact_items(ev, patient, images, info.get("tile_stride_px")),
        "series": info.get("series", {}),
    }


def headline_cells(ev: EvalOutput, patient: str) -> list[dict[str, str]]:
    """Index-page cells: PSNR/SSIM (redcnn) low -> denoised, noise reduction, artifact flag."""
    pp = ev.for_patient("per_patient", patient)
    cells = []
    for metric in ("psnr", "ssim"):
        for comparison in ("low_vs_full", "denoised_vs_full"):
            r = (
                pp[
                    (pp["profile"] == "redcnn")
                    & (pp["metric"] == metric)
                    & (pp["comparison"] == comparison)
                ]
                if not pp.empty
                else pd.DataFrame()
            )
            cells.append(
                {"key": f"{metric}_{comparison}", "text": fmt(r["mean"].iloc[0]) if len(r) else "—"}
            )
    for name in baseline_names(ev):
        for metric in ("psnr", "ssim"):
            r = (
                pp[
                    (pp["profile"] == "redcnn")
                    & (pp["metric"] == metric)
                    & (pp["comparison"] == f"{name}_vs_full")
                ]
                if not pp.empty
                else pd.DataFrame()
            )
            cells.append(
                {"key": f"{metric}_{name}", "text": fmt(r["mean"].iloc[0]) if len(r) else "—"}
            )
    qa = ev.for_patient("qa", patient)
    den = qa[qa["role"] == "denoised"] if not qa.empty else qa
    ratio = (
        float(den["sd_ratio_vs_low"].iloc[0])
        if len(den) and "sd_ratio_vs_low" in den
        else float("nan")
    )
    cells.append(
        {
            "key": "noise_reduction",
            "text": "—" if math.isnan(ratio) else f"{100 * (1 - ratio):.0f} %",
        }
    )
    art = ev.for_patient("artifacts", patient)
    cells.append(
        {
            "key": "artifact",
            "text": ("FLAGGED" if art["flagged"].astype(bool).any() else "none")
            if len(art)
            else "—",
        }
    )
    return cells


HEADLINE_COLUMNS = [
    {"label": "PSNR low [dB] (redcnn)"},
    {"label": "PSNR denoised [dB]"},
    {"label": "SSIM low"},
    {"label": "SSIM denoised"},
    {"label": "noise reduction (TG-233)"},
    {"label": "grid/seam"},
]
