"""Aggregation and paired tests: scipy for the patient-level parts, simulation for coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from pipeline.evaluate.stats import (
    N_BOOT,
    block_bootstrap_means,
    block_length,
    cohort,
    describe,
    paired_tests,
    per_patient,
)


def _per_slice() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for p, shift in (("A", 0.0), ("B", 1.0), ("C", 0.5)):
        low = 30 + shift + rng.standard_normal(12)
        den = low + 2 + 0.3 * rng.standard_normal(12)
        for comp, vals in (("low_vs_full", low), ("denoised_vs_full", den)):
            for i, v in enumerate(vals):
                rows.append((p, i, 0.0, "", comp, "redcnn", "psnr", v, "dB"))
    rows.append(("A", 99, 0.0, "", "low_vs_full", "redcnn", "psnr", np.inf, "dB"))
    cols = ["patient", "slice_index", "z_mm", "sop_instance_uid", "comparison", "profile",
            "metric", "value", "unit"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _ar1(n: int, rho: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0] / np.sqrt(1 - rho * rho)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + e[i]
    return x


def test_per_patient_and_cohort_aggregation() -> None:
    ps = _per_slice()
    pp = per_patient(ps)
    a = pp[(pp.patient == "A") & (pp.comparison == "low_vs_full")].iloc[0]
    vals = ps[(ps.patient == "A") & (ps.comparison == "low_vs_full")]["value"].to_numpy()
    fin = vals[np.isfinite(vals)]
    assert a["n_slices"] == 13 and a["n_finite"] == 12  # the +inf slice is counted, not averaged
    assert a["mean"] == pytest.approx(fin.mean())
    assert a["ci95_lo"] < fin.mean() < a["ci95_hi"]
    assert "block bootstrap" in a["ci_method"]
    co = cohort(pp)
    row = co[co.comparison == "denoised_vs_full"].iloc[0]
    means = pp[pp.comparison == "denoised_vs_full"]["mean"].to_numpy()
    assert row["n_patients"] == 3 and row["mean"] == pytest.approx(means.mean())
    assert row["sd"] == pytest.approx(means.std(ddof=1))
    lo, hi = st.t.interval(0.95, 2, loc=means.mean(), scale=st.sem(means))  # n = patients
    assert (row["ci95_lo"], row["ci95_hi"]) == pytest.approx((lo, hi))


def test_uncorrelated_slices_give_the_ordinary_bootstrap() -> None:
    """L = 1 for independent values; the interval then matches scipy's percentile bootstrap."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(200)
    assert block_length(np.arange(200) % 2 * 1.0) == 1  # negative autocorrelation -> 1
    d = describe(x)
    b = d["block_len"]
    ref = st.bootstrap((x,), np.mean, n_resamples=N_BOOT, method="percentile", random_state=1)
    ci = ref.confidence_interval
    w, wref = d["ci95_hi"] - d["ci95_lo"], ci.high - ci.low
    assert b <= 2 and abs(w / wref - 1) < 0.15


def test_block_bootstrap_covers_the_mean_of_correlated_slices() -> None:
    """AR(1) slices (rho 0.8): the naive t interval under-covers; the block bootstrap does not."""
    rng = np.random.default_rng(7)
    n, reps = 32, 200
    cover_t = cover_b = 0
    for _ in range(reps):
        x = _ar1(n, 0.8, rng)
        lo, hi = st.t.interval(0.95, n - 1, loc=x.mean(), scale=st.sem(x))
        cover_t += lo <= 0 <= hi
        boots = block_bootstrap_means(x, block_length(x), n_boot=500)
        blo, bhi = np.quantile(boots, [0.025, 0.975])
        cover_b += blo <= 0 <= bhi
    assert cover_t / reps < 0.75  # treating slices as independent: ~60 % "95 %" intervals
    assert cover_b / reps > cover_t / reps + 0.1
    assert block_length(_ar1(32, 0.8, rng)) > 1


def test_paired_tests_patient_bootstrap_and_cohort_wilcoxon() -> None:
    ps = _per_slice()
    tests = paired_tests(ps, per_patient(ps))
    b = tests[(tests.level == "patient") & (tests.patient == "B")].iloc[0]
    g = ps[ps.patient == "B"]
    den = g[g.comparison == "denoised_vs_full"].sort_values("slice_index")["value"].to_numpy()
    low = g[g.comparison == "low_vs_full"].sort_values("slice_index")["value"].to_numpy()
    assert b["n"] == 12 and b["n_unit"] == "slices"
    assert b["mean_diff"] == pytest.approx(np.mean(den - low))
    assert b["ci95_lo"] > 0 and bool(b["improved"]) and b["better"] == "higher"
    assert "block bootstrap" in b["method"] and np.isnan(b["statistic"])
    coh = tests[tests.level == "cohort"].iloc[0]
    assert coh["n"] == 3 and coh["patient"] == "*" and coh["n_unit"] == "patients"
    pm = per_patient(ps).pivot_table(index="patient", columns="comparison", values="mean")
    ref = st.wilcoxon(pm["denoised_vs_full"] - pm["low_vs_full"])
    assert coh["p_value"] == pytest.approx(ref.pvalue) == pytest.approx(0.25)  # exact, n=3
    assert not bool(coh["improved"])  # 3 patients cannot show p < 0.05


def test_no_effect_is_not_improved() -> None:
    rng = np.random.default_rng(11)
    rows = []
    low = 30 + _ar1(16, 0.7, rng)
    den = low + 0.02 * rng.standard_normal(16)
    for comp, vals in (("low_vs_full", low), ("denoised_vs_full", den)):
        for i, v in enumerate(vals):
            rows.append(("A", i, 0.0, "", comp, "redcnn", "psnr", v, "dB"))
    cols = ["patient", "slice_index", "z_mm", "sop_instance_uid", "comparison", "profile",
            "metric", "value", "unit"]  # fmt: skip
    ps = pd.DataFrame(rows, columns=cols)
    t = paired_tests(ps, per_patient(ps)).iloc[0]
    assert t["ci95_lo"] < 0 < t["ci95_hi"] or not bool(t["improved"])
    assert t["p_value"] > 1e-3
