"""Per-patient verdicts (pass / review / fail) from declarative rules over evaluation tables."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import pandas as pd

from pipeline.report.config import Rule, RuleKind, Severity

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class RuleResult:
    """One rule applied to one patient: its value, whether it fired, and why."""

    rule: Rule
    value: float | None  # None: the tables hold no value for this rule (e.g. no reference)
    triggered: bool

    @property
    def status(self) -> str:
        if self.value is None:
            return "n/a"
        return self.rule.severity.value if self.triggered else "ok"


@dataclass(frozen=True)
class Verdict:
    patient: str
    verdict: str  # "pass" | "review" | "fail"
    results: tuple[RuleResult, ...]

    @property
    def reasons(self) -> list[str]:
        return [
            f"{r.rule.id}: {r.rule.explain} (value {r.value:.3g} {r.rule.op} {r.rule.threshold:g})"
            for r in self.results
            if r.triggered and r.value is not None
        ]


def _mean_of(per_patient: pd.DataFrame, patient: str, comparison: str, rule: Rule) -> float | None:
    rows = per_patient[
        (per_patient["patient"] == patient)
        & (per_patient["comparison"] == comparison)
        & (per_patient["profile"] == rule.profile)
        & (per_patient["metric"] == rule.metric)
    ]
    if rows.empty:
        return None
    value = float(rows["mean"].iloc[0])
    return None if math.isnan(value) else value


def rule_value(rule: Rule, patient: str, tables: dict[str, pd.DataFrame]) -> float | None:
    """The per-patient number a rule compares with its threshold (None when not available)."""
    if rule.kind is RuleKind.ARTIFACT_FLAG:
        art = tables.get("artifacts")
        if art is None or art.empty:
            return None
        rows = art[art["patient"] == patient]
        if rule.residual is not None:
            rows = rows[rows["residual"] == rule.residual]
        if rows.empty:
            return None
        return float(rows["flagged"].astype(bool).any())
    if rule.kind is RuleKind.GUARDRAIL:
        g = tables.get("guardrails")
        if g is None or g.empty:
            return None
        rows = g[g["patient"].astype(str) == patient]
        return None if rows.empty else float(rows["n_reasons"].iloc[0])
    if rule.kind is RuleKind.QA:
        qa = tables.get("qa")
        if qa is None or qa.empty or rule.column not in qa.columns:
            return None
        rows = qa[(qa["patient"] == patient) & (qa["role"] == "denoised")]
        if rows.empty or pd.isna(rows[rule.column].iloc[0]):
            return None
        return float(rows[rule.column].iloc[0])
    per_patient = tables.get("per_patient")
    if per_patient is None or per_patient.empty:
        return None
    den = _mean_of(per_patient, patient, "denoised_vs_full", rule)
    if rule.kind is RuleKind.METRIC:
        return den
    low = _mean_of(per_patient, patient, "low_vs_full", rule)
    if den is None or low is None:
        return None
    return den - low


def judge(patient: str, rules: list[Rule], tables: dict[str, pd.DataFrame]) -> Verdict:
    """Apply every rule; the verdict is the worst severity among the triggered rules."""
    results = []
    for rule in rules:
        value = rule_value(rule, patient, tables)
        triggered = False
        if value is not None:
            compared = abs(value) if rule.absolute else value
            triggered = bool(_OPS[rule.op](compared, rule.threshold))
        results.append(RuleResult(rule, value, triggered))
    fired = {r.rule.severity for r in results if r.triggered}
    verdict = "fail" if Severity.FAIL in fired else "review" if Severity.REVIEW in fired else "pass"
    return Verdict(patient, verdict, tuple(results))
