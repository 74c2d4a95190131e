"""Aggregation and Wilcoxon tests against scipy computed directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from pipeline.evaluate.stats import cohort, per_patient, wilcoxon_tests


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


def test_per_patient_and_cohort_match_scipy() -> None:
    ps = _per_slice()
    pp = per_patient(ps)
    a = pp[(pp.patient == "A") & (pp.comparison == "low_vs_full")].iloc[0]
    vals = ps[(ps.patient == "A") & (ps.comparison == "low_vs_full")]["value"].to_numpy()
    fin = vals[np.isfinite(vals)]
    assert a["n_slices"] == 13 and a["n_finite"] == 12  # the +inf slice is counted, not averaged
    assert a["mean"] == pytest.approx(fin.mean())
    lo, hi = st.t.interval(0.95, len(fin) - 1, loc=fin.mean(), scale=st.sem(fin))
    assert (a["ci95_lo"], a["ci95_hi"]) == pytest.approx((lo, hi))
    co = cohort(pp)
    row = co[co.comparison == "denoised_vs_full"].iloc[0]
    means = pp[pp.comparison == "denoised_vs_full"]["mean"].to_numpy()
    assert row["n_patients"] == 3 and row["mean"] == pytest.approx(means.mean())
    assert row["sd"] == pytest.approx(means.std(ddof=1))


def test_wilcoxon_matches_scipy_and_direction() -> None:
    ps = _per_slice()
    tests = wilcoxon_tests(ps, per_patient(ps))
    b = tests[(tests.level == "patient") & (tests.patient == "B")].iloc[0]
    g = ps[ps.patient == "B"]
    den = g[g.comparison == "denoised_vs_full"].sort_values("slice_index")["value"].to_numpy()
    low = g[g.comparison == "low_vs_full"].sort_values("slice_index")["value"].to_numpy()
    ref = st.wilcoxon(den, low)
    assert b["p_value"] == pytest.approx(ref.pvalue) and b["statistic"] == ref.statistic
    assert b["median_diff"] > 0 and bool(b["improved"]) and b["better"] == "higher"
    coh = tests[tests.level == "cohort"].iloc[0]
    assert coh["n"] == 3 and coh["patient"] == "*"
    assert coh["p_value"] == pytest.approx(0.25)  # exact two-sided, n=3, all positive
