"""Aggregation of tidy per-slice metrics: per patient, per cohort, and honest paired tests.

Slices of one patient are not independent samples (neighbouring slices share anatomy and, in
a denoiser's output, the same errors), so no test or interval here treats them as such:

* **Per patient**: mean / SD over slices, and a 95 % interval of the mean from a circular
  moving-block bootstrap over slices (Kunsch 1989; Politis & Romano 1992): blocks of ``L``
  consecutive slices are resampled, so the correlation within a block is kept. ``L`` follows
  the AR(1) rule ``L = ceil((2 rho / (1 - rho^2))^(2/3) (3 n / 2)^(1/3))`` from the lag-1
  autocorrelation ``rho`` of the slice values (at least 1, at most ``n``; Hall, Horowitz & Jing
  1995), so uncorrelated slices give ``L = 1`` (the ordinary bootstrap).
* **Per patient test** (denoised vs low, paired by slice): the same block bootstrap of the
  mean paired difference; ``improved`` when its 95 % interval excludes 0 in the better
  direction; ``p_value`` is the bootstrap p (twice the smaller tail fraction beyond 0).
* **Cohort** (n = patients): mean of patient means (each patient weighs the same), SD between
  patients, Student-t interval over patients; test: scipy's exact two-sided Wilcoxon
  signed-rank test over the patient means (its smallest possible p with n patients is
  ``2 / 2^n``, so 3 patients can never reach p < 0.05 - an honest answer).

Non-finite values (PSNR of identical slices = +inf) are left out of means and counted.
Column names: docs/evaluation.md.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

#: Bootstrap resamples and the fixed seed (results are reproducible run to run).
N_BOOT = 2000
BOOT_SEED = 0
#: Below this many finite slices no interval is given.
MIN_SLICES_CI = 4
PATIENT_METHOD = "circular moving-block bootstrap over slices"
COHORT_METHOD = "exact Wilcoxon signed-rank over patient means; t interval over patients"

#: Which direction is better for each metric.
BETTER: dict[str, str] = {"psnr": "higher", "ssim": "higher", "rmse_hu": "lower", "mae_hu": "lower"}
KEYS = ["profile", "metric", "unit"]


def lag1_autocorr(values: np.ndarray) -> float:
    """Lag-1 autocorrelation of a slice-ordered series (0 for fewer than 3 values)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 3 or np.var(v) == 0:
        return 0.0
    d = v - v.mean()
    return float(np.sum(d[1:] * d[:-1]) / np.sum(d * d))


def block_length(values: np.ndarray) -> int:
    """Block length for the moving-block bootstrap of the mean (AR(1) rule, 1..n)."""
    n = int(np.asarray(values).size)
    if n < 2:
        return 1
    rho = min(max(lag1_autocorr(values), 0.0), 0.95)
    if rho == 0.0:
        return 1
    b = (2 * rho / (1 - rho * rho)) ** (2 / 3) * (1.5 * n) ** (1 / 3)
    return int(min(n, max(1, math.ceil(b))))


def block_bootstrap_means(
    values: np.ndarray, block_len: int, *, n_boot: int = N_BOOT, seed: int = BOOT_SEED
) -> np.ndarray:
    """``n_boot`` means of circular moving-block resamples of a slice-ordered series."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    rng = np.random.default_rng(seed)
    n_blocks = math.ceil(n / block_len)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block_len)[None, None, :]) % n
    return v[idx.reshape(n_boot, -1)[:, :n]].mean(axis=1)


def describe(values: np.ndarray) -> dict[str, float]:
    """n, n_finite, mean, sd and a 95 % block-bootstrap interval of the mean (slice order)."""
    v = np.asarray(values, dtype=np.float64)
    f = v[np.isfinite(v)]
    n = len(f)
    mean = float(f.mean()) if n else float("nan")
    sd = float(f.std(ddof=1)) if n > 1 else float("nan")
    lo = hi = float("nan")
    b = block_length(f) if n else 1
    if n >= MIN_SLICES_CI:
        boots = block_bootstrap_means(f, b)
        lo, hi = (float(q) for q in np.quantile(boots, [0.025, 0.975]))
    return {
        "n": len(v),
        "n_finite": n,
        "mean": mean,
        "sd": sd,
        "ci95_lo": lo,
        "ci95_hi": hi,
        "block_len": b,
        "lag1_autocorr": lag1_autocorr(f),
    }


def t_interval(values: np.ndarray) -> dict[str, float]:
    """n, mean, sd and the Student-t 95 % interval of independent values (patients)."""
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
    """Per-patient summary rows of the per-slice table (slices in z order for the bootstrap)."""
    rows = []
    ordered = per_slice.sort_values(["patient", "comparison", *KEYS, "slice_index"])
    for (patient, comparison, profile, metric, unit), g in ordered.groupby(
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
                "ci_method": f"{PATIENT_METHOD} (L={d['block_len']}, B={N_BOOT})",
                "lag1_autocorr": d["lag1_autocorr"],
            }
        )
    return pd.DataFrame(rows, columns=PATIENT_COLUMNS)


def cohort(per_patient_df: pd.DataFrame) -> pd.DataFrame:
    """Cohort rows: statistics over the patient means."""
    rows = []
    for (comparison, profile, metric, unit), g in per_patient_df.groupby(
        ["comparison", *KEYS], sort=True
    ):
        d = t_interval(g["mean"].to_numpy())
        rows.append(
            {
                "comparison": comparison,
                "profile": profile,
                "metric": metric,
                "unit": unit,
                "n_patients": d["n_finite"],
                **{k: d[k] for k in ("mean", "sd", "ci95_lo", "ci95_hi")},
                "ci_method": "t interval over patient means",
            }
        )
    return pd.DataFrame(rows, columns=COHORT_COLUMNS)


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    if len(d) < 2 or np.all(d == 0):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on ties / small n (exact -> normal)
        res = stats.wilcoxon(d, alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def _direction(metric: str, lo: float, hi: float) -> tuple[str, bool]:
    better = BETTER.get(metric, "higher")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return better, False
    return better, bool(lo > 0 if better == "higher" else hi < 0)


def _patient_test(patient: str, key: tuple, den: np.ndarray, low: np.ndarray) -> dict:
    """Block bootstrap over slices of the mean paired difference denoised - low."""
    profile, metric, unit = key
    ok = np.isfinite(den) & np.isfinite(low)
    d = den[ok] - low[ok]
    n = int(ok.sum())
    lo = hi = p = float("nan")
    b = block_length(d) if n else 1
    if n >= MIN_SLICES_CI and not np.all(d == d[0]):
        boots = block_bootstrap_means(d, b)
        lo, hi = (float(q) for q in np.quantile(boots, [0.025, 0.975]))
        tail = min(float(np.mean(boots <= 0)), float(np.mean(boots >= 0)))
        p = float(min(1.0, max(2 * tail, 1.0 / N_BOOT)))
    better, improved = _direction(metric, lo, hi)
    return {
        "level": "patient",
        "patient": patient,
        "profile": profile,
        "metric": metric,
        "unit": unit,
        "n": n,
        "n_unit": "slices",
        "mean_diff": float(d.mean()) if n else float("nan"),
        "median_diff": float(np.median(d)) if n else float("nan"),
        "ci95_lo": lo,
        "ci95_hi": hi,
        "statistic": float("nan"),
        "p_value": p,
        "method": f"{PATIENT_METHOD} of the mean paired difference (L={b}, B={N_BOOT})",
        "better": better,
        "improved": improved,
    }


def _cohort_test(key: tuple, den: np.ndarray, low: np.ndarray) -> dict:
    """Wilcoxon signed-rank over patient means (n = patients) and a t interval of the mean."""
    profile, metric, unit = key
    ok = np.isfinite(den) & np.isfinite(low)
    d = den[ok] - low[ok]
    stat, p = _wilcoxon(d)
    ti = t_interval(d)
    better = BETTER.get(metric, "higher")
    direction = ti["mean"] > 0 if better == "higher" else ti["mean"] < 0
    return {
        "level": "cohort",
        "patient": "*",
        "profile": profile,
        "metric": metric,
        "unit": unit,
        "n": int(ok.sum()),
        "n_unit": "patients",
        "mean_diff": ti["mean"],
        "median_diff": float(np.median(d)) if len(d) else float("nan"),
        "ci95_lo": ti["ci95_lo"],
        "ci95_hi": ti["ci95_hi"],
        "statistic": stat,
        "p_value": p,
        "method": COHORT_METHOD,
        "better": better,
        "improved": bool(direction and np.isfinite(p) and p < 0.05),
    }


def paired_tests(per_slice: pd.DataFrame, per_patient_df: pd.DataFrame) -> pd.DataFrame:
    """denoised_vs_full vs low_vs_full: per patient (block bootstrap), cohort (patients)."""
    rows = []
    idx = ["patient", "slice_index", *KEYS]
    wide = per_slice.pivot_table(index=idx, columns="comparison", values="value", aggfunc="first")
    if {"denoised_vs_full", "low_vs_full"} <= set(wide.columns):
        wide = wide.reset_index().sort_values(idx)
        for (patient, *key), g in wide.groupby(["patient", *KEYS], sort=True):
            rows.append(
                _patient_test(
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
                    _cohort_test(
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
    "n_slices", "n_finite", "mean", "sd", "ci95_lo", "ci95_hi", "ci_method", "lag1_autocorr",
]  # fmt: skip
COHORT_COLUMNS = [
    "comparison", "profile", "metric", "unit", "n_patients", "mean", "sd", "ci95_lo", "ci95_hi",
    "ci_method",
]  # fmt: skip
TEST_COLUMNS = [
    "level", "patient", "profile", "metric", "unit", "n", "n_unit", "mean_diff", "median_diff",
    "ci95_lo", "ci95_hi", "statistic", "p_value", "method", "better", "improved",
]  # fmt: skip
