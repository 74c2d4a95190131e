"""Aggregation of tidy per-slice metrics: per patient, per cohort, paired Wilcoxon tests.

Per patient: mean / sample SD over slices and a Student-t 95 % interval of the mean. Cohort:
mean of patient means (each patient weighs the same), SD between patients, t interval over
patients. Non-finite values (PSNR of identical slices = +inf) are left out of means and
counted. Tests: scipy's two-sided Wilcoxon signed-rank test of denoised vs low-dose, paired by
slice within a patient and by patient over the cohort. Column names: docs/evaluation.md.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

#: Which direction is better for each metric.
BETTER: dict[str, str] = {"psnr": "higher", "ssim": "higher", "rmse_hu": "lower", "mae_hu": "lower"}
KEYS = ["profile", "metric", "unit"]


def describe(values: np.ndarray) -> dict[str, float]:
    """n, n_finite, mean, sd, 95 % t interval of the mean of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    f = v[np.isfinite(v)]
    n = len(f)
    mean = float(f.mean()) if n else float("nan")
    sd = float(f.std(ddof=1)) if n > 1 else float("nan")
    if n > 1:
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        lo = hi = float("nan")
    return {"n": len(v), "n_finite": n, "mean": mean, "sd": sd, "ci95_lo": lo, "ci95_hi": hi}


def per_patient(per_slice: pd.DataFrame) -> pd.DataFrame:
    """Per-patient summary rows of the per-slice table."""
    rows = []
    for (patient, comparison, profile, metric, unit), g in per_slice.groupby(
        ["patient", "comparison", *KEYS], sort=True
    ):
        d = describe(g["value"].to_numpy())
        rows.append(
            {
                "patient": patient,
                "comparison": comparison,
                "profile": profile,
                "metric": metric,
                "unit": unit,
                "n_slices": d["n"],
                "n_finite": d["n_finite"],
                **{k: d[k] for k in ("mean", "sd", "ci95_lo", "ci95_hi")},
            }
        )
    return pd.DataFrame(rows, columns=PATIENT_COLUMNS)


def cohort(per_patient_df: pd.DataFrame) -> pd.DataFrame:
    """Cohort rows: statistics over the patient means."""
    rows = []
    for (comparison, profile, metric, unit), g in per_patient_df.groupby(
        ["comparison", *KEYS], sort=True
    ):
        d = describe(g["mean"].to_numpy())
        rows.append(
            {
                "comparison": comparison,
                "profile": profile,
                "metric": metric,
                "unit": unit,
                "n_patients": d["n_finite"],
                **{k: d[k] for k in ("mean", "sd", "ci95_lo", "ci95_hi")},
            }
        )
    return pd.DataFrame(rows, columns=COHORT_COLUMNS)


def _wilcoxon(den: np.ndarray, low: np.ndarray) -> tuple[int, float, float, float]:
    ok = np.isfinite(den) & np.isfinite(low)
    d = den[ok] - low[ok]
    n = int(ok.sum())
    med = float(np.median(d)) if n else float("nan")
    if n < 2 or np.all(d == 0):
        return n, med, float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on ties / small n (exact -> normal)
        res = stats.wilcoxon(den[ok], low[ok], alternative="two-sided")
    return n, med, float(res.statistic), float(res.pvalue)


def _test_row(level: str, patient: str, key: tuple, den: np.ndarray, low: np.ndarray) -> dict:
    profile, metric, unit = key
    n, med, stat, p = _wilcoxon(den, low)
    better = BETTER.get(metric, "higher")
    direction = med > 0 if better == "higher" else med < 0
    return {
        "level": level,
        "patient": patient,
        "profile": profile,
        "metric": metric,
        "unit": unit,
        "n": n,
        "median_diff": med,
        "statistic": stat,
        "p_value": p,
        "better": better,
        "improved": bool(direction and np.isfinite(p) and p < 0.05),
    }


def wilcoxon_tests(per_slice: pd.DataFrame, per_patient_df: pd.DataFrame) -> pd.DataFrame:
    """Paired tests denoised_vs_full vs low_vs_full, per patient (slices) and cohort (patients)."""
    rows = []
    idx = ["patient", "slice_index", *KEYS]
    wide = per_slice.pivot_table(index=idx, columns="comparison", values="value", aggfunc="first")
    if {"denoised_vs_full", "low_vs_full"} <= set(wide.columns):
        for (patient, *key), g in wide.reset_index().groupby(["patient", *KEYS], sort=True):
            rows.append(
                _test_row(
                    "patient",
                    patient,
                    tuple(key),
                    g["denoised_vs_full"].to_numpy(float),
                    g["low_vs_full"].to_numpy(float),
                )
            )
    pw = per_patient_df.pivot_table(
        index=["patient", *KEYS], columns="comparison", values="mean", aggfunc="first"
    )
    if {"denoised_vs_full", "low_vs_full"} <= set(pw.columns):
        for key, g in pw.reset_index().groupby(KEYS, sort=True):
            if len(g) >= 2:
                rows.append(
                    _test_row(
                        "cohort",
                        "*",
                        tuple(key),
                        g["denoised_vs_full"].to_numpy(float),
                        g["low_vs_full"].to_numpy(float),
                    )
                )
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


SLICE_COLUMNS = [
    "patient", "slice_index", "z_mm", "sop_instance_uid", "comparison",
    "profile", "metric", "value", "unit",
]  # fmt: skip
PATIENT_COLUMNS = [
    "patient", "comparison", "profile", "metric", "unit",
    "n_slices", "n_finite", "mean", "sd", "ci95_lo", "ci95_hi",
]  # fmt: skip
COHORT_COLUMNS = [
    "comparison", "profile", "metric", "unit", "n_patients", "mean", "sd", "ci95_lo", "ci95_hi",
]  # fmt: skip
TEST_COLUMNS = [
    "level", "patient", "profile", "metric", "unit", "n", "median_diff",
    "statistic", "p_value", "better", "improved",
]  # fmt: skip
