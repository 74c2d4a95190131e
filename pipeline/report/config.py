"""Report configuration: verdict rules (thresholds a physicist can read and change) and panels."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field

from pipeline.config import StrictModel


class Severity(str, Enum):
    """Outcome of a triggered rule; the patient's verdict is the worst triggered severity."""

    REVIEW = "review"
    FAIL = "fail"


class RuleKind(str, Enum):
    """Where a rule takes its per-patient value from (see :mod:`pipeline.report.verdict`)."""

    #: 1 if the grid/seam detector flagged the patient for the given residual, else 0.
    ARTIFACT_FLAG = "artifact_flag"
    #: a column of the ``qa`` table (no-reference summary) for role ``denoised``.
    QA = "qa"
    #: denoised_vs_full mean minus low_vs_full mean of a metric under a profile (per patient).
    METRIC_GAIN = "metric_gain"
    #: the mean of a metric under a profile for ``denoised_vs_full`` (per patient).
    METRIC = "metric"
    #: number of guardrail reasons (outside the training envelope, lossy input, implausible
    #: kVp/CTDIvol) of the patient's input (``guardrails`` table).
    GUARDRAIL = "guardrail"


class Rule(StrictModel):
    """``value <op> threshold`` triggers ``severity``; the page shows all of it."""

    id: str
    kind: RuleKind
    severity: Severity
    op: Literal[">", ">=", "<", "<="]
    threshold: float
    column: str | None = None  # qa column
    profile: str | None = None  # metric profile
    metric: str | None = None  # metric name
    residual: str | None = None  # artifact residual (None = any)
    absolute: bool = False  # compare |value|
    explain: str = ""


def default_rules() -> list[Rule]:
    """The default verdict rules (also in ``configs/report.yaml``)."""
    return [*_input_and_metric_rules(), *_hu_and_noise_rules(), *_resolution_and_task_rules()]


def _input_and_metric_rules() -> list[Rule]:
    """Guardrail, artifact and full-reference metric rules."""
    return [
        Rule(
            id="input_needs_review",
            kind=RuleKind.GUARDRAIL,
            op=">=",
            threshold=1,
            severity=Severity.REVIEW,
            explain="input outside the model's training envelope, lossy, or implausible "
            "kVp/CTDIvol (reasons on the page)",
        ),
        Rule(
            id="grid_or_seam_artifact",
            kind=RuleKind.ARTIFACT_FLAG,
            op=">=",
            threshold=1,
            severity=Severity.FAIL,
            explain="periodic (grid/checkerboard) or tile-seam pattern in the residual",
        ),
        Rule(
            id="psnr_worse_than_input",
            kind=RuleKind.METRIC_GAIN,
            profile="redcnn",
            metric="psnr",
            op="<",
            threshold=0.0,
            severity=Severity.FAIL,
            explain="denoised is further from full dose than the low-dose input",
        ),
    ]


def _hu_and_noise_rules() -> list[Rule]:
    """HU fidelity, noise reduction and noise texture against full dose."""
    return [
        Rule(
            id="hu_bias",
            kind=RuleKind.QA,
            column="hu_bias_vs_low_hu",
            absolute=True,
            op=">",
            threshold=10.0,
            severity=Severity.FAIL,
            explain="mean HU in uniform ROIs shifted by more than 10 HU",
        ),
        Rule(
            id="hu_bias_small",
            kind=RuleKind.QA,
            column="hu_bias_vs_low_hu",
            absolute=True,
            op=">",
            threshold=5.0,
            severity=Severity.REVIEW,
            explain="mean HU in uniform ROIs shifted by more than 5 HU",
        ),
        Rule(
            id="little_noise_reduction",
            kind=RuleKind.QA,
            column="sd_ratio_vs_low",
            op=">",
            threshold=0.9,
            severity=Severity.REVIEW,
            explain="noise SD (noise-only images, TG-233) reduced by less than 10 %",
        ),
        Rule(
            id="over_smoothing",
            kind=RuleKind.QA,
            column="sd_ratio_vs_full",
            op="<",
            threshold=0.9,
            severity=Severity.REVIEW,
            explain="noise SD below 90 % of the full-dose target (over-smoothed: check texture, "
            "resolution and detectability)",
        ),
        Rule(
            id="texture_vs_full",
            kind=RuleKind.QA,
            column="nps_mean_freq_ratio_vs_full",
            op="<",
            threshold=0.8,
            severity=Severity.REVIEW,
            explain="NPS mean frequency below 80 % of the full-dose target's (blotchy, plastic "
            "texture)",
        ),
    ]


def _resolution_and_task_rules() -> list[Rule]:
    """Resolution (TTF50), detectability (NPWE d') and texture shift against the input."""
    return [
        Rule(
            id="resolution_loss",
            kind=RuleKind.QA,
            column="ttf50_ratio_vs_full",
            op="<",
            threshold=0.8,
            severity=Severity.REVIEW,
            explain="insert TTF50 below 80 % of full dose (resolution traded for noise)",
        ),
        Rule(
            id="resolution_loss_severe",
            kind=RuleKind.QA,
            column="ttf50_ratio_vs_full",
            op="<",
            threshold=0.65,
            severity=Severity.FAIL,
            explain="insert TTF50 below 65 % of full dose (resolution traded for noise)",
        ),
        Rule(
            id="detectability_not_improved",
            kind=RuleKind.QA,
            column="dprime_npwe_ratio_vs_low",
            op="<",
            threshold=1.0,
            severity=Severity.REVIEW,
            explain="low-contrast detectability (NPWE d') not better than the low-dose input's",
        ),
        Rule(
            id="detectability_lost",
            kind=RuleKind.QA,
            column="dprime_npwe_ratio_vs_low",
            op="<",
            threshold=0.8,
            severity=Severity.FAIL,
            explain="low-contrast detectability (NPWE d') below 80 % of the low-dose input's",
        ),
        Rule(
            id="texture_shift",
            kind=RuleKind.QA,
            column="nps_mean_freq_ratio_vs_low",
            op="<",
            threshold=0.6,
            severity=Severity.REVIEW,
            explain="NPS mean frequency fell below 60 % of the input's (over-smoothed, blotchy)",
        ),
    ]


class ReportConfig(StrictModel):
    """Everything that shapes a report; saved (resolved) with every report."""

    rules: list[Rule] = Field(default_factory=default_rules)
    #: windows for the image panels (names from pipeline.intensity.WINDOWS or "W/L")
    panel_windows: list[str] = Field(default_factory=lambda: ["soft_tissue", "lung", "bone"])
    #: metric profile whose PSNR/SSIM pick the representative/worst slices and draw the curves
    curve_profile: str = "redcnn"
    #: representative (median-gain) slices shown besides the worst slice
    n_representative: int = Field(default=1, ge=0, le=5)
    #: replace patient identifiers with a keyed hash everywhere
    pseudonymize: bool = False
    #: also write a PDF per patient (needs chromium)
    pdf: bool = False
