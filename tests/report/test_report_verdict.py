"""Verdict rules against hand-made tables: each rule's value and firing are checked exactly."""

import pandas as pd
import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.report.config import ReportConfig, Rule, RuleKind, Severity, default_rules
from pipeline.report.pseudonym import Pseudonymizer
from pipeline.report.verdict import judge, rule_value


def _tables(psnr_low: float, psnr_den: float, bias: float, sd_ratio: float, flagged: bool):
    per_patient = pd.DataFrame(
        [
            {"patient": "A", "comparison": c, "profile": "redcnn", "metric": "psnr", "mean": v}
            for c, v in (("low_vs_full", psnr_low), ("denoised_vs_full", psnr_den))
        ]
    )
    qa = pd.DataFrame(
        [
            {"patient": "A", "role": "low", "hu_bias_vs_low_hu": 0.0, "sd_ratio_vs_low": 1.0,
             "nps_mean_freq_ratio_vs_low": 1.0},
            {"patient": "A", "role": "denoised", "hu_bias_vs_low_hu": bias,
             "sd_ratio_vs_low": sd_ratio, "nps_mean_freq_ratio_vs_low": 0.9},
        ]
    )  # fmt: skip
    artifacts = pd.DataFrame(
        [{"patient": "A", "residual": "denoised_minus_low", "flagged": flagged}]
    )
    return {"per_patient": per_patient, "qa": qa, "artifacts": artifacts}


def test_clean_patient_passes():
    v = judge("A", default_rules(), _tables(30.0, 34.0, 1.0, 0.5, False))
    assert v.verdict == "pass" and v.reasons == []
    gain = next(r for r in v.results if r.rule.id == "psnr_worse_than_input")
    assert gain.value == pytest.approx(4.0)


def test_small_bias_is_review_large_bias_is_fail():
    assert judge("A", default_rules(), _tables(30, 34, -6.0, 0.5, False)).verdict == "review"
    v = judge("A", default_rules(), _tables(30, 34, -12.0, 0.5, False))
    assert v.verdict == "fail"
    assert any(r.startswith("hu_bias:") for r in v.reasons)


def test_artifact_flag_and_psnr_loss_fail():
    v = judge("A", default_rules(), _tables(30, 34, 0.0, 0.5, True))
    assert v.verdict == "fail" and v.reasons[0].startswith("grid_or_seam_artifact")
    assert judge("A", default_rules(), _tables(34, 33.9, 0.0, 0.5, False)).verdict == "fail"


def test_missing_reference_gives_na_not_pass_by_accident():
    tables = _tables(30, 34, 0.0, 0.95, False)
    tables["per_patient"] = pd.DataFrame()
    v = judge("A", default_rules(), tables)
    gain = next(r for r in v.results if r.rule.id == "psnr_worse_than_input")
    assert gain.value is None and gain.status == "n/a"
    assert v.verdict == "review"  # little noise reduction still fires


def test_rule_kinds_and_config_validation(tmp_path):
    rule = Rule(id="ssim", kind=RuleKind.METRIC, profile="redcnn", metric="psnr", op="<",
                threshold=31.0, severity=Severity.REVIEW)  # fmt: skip
    assert rule_value(rule, "A", _tables(30, 32, 0, 0.5, False)) == 32.0
    cfg_file = tmp_path / "r.yaml"
    cfg_file.write_text("rules:\n  - {id: x, kind: nope, op: '>', threshold: 1, severity: fail}\n")
    with pytest.raises(ConfigError, match=r"rules\.0\.kind"):
        load_config(ReportConfig, cfg_file)


def test_pseudonyms_keyed_and_stable():
    a, b = Pseudonymizer(True, "k1"), Pseudonymizer(True, "k1")
    assert a("PAT-1") == b("PAT-1") != Pseudonymizer(True, "k2")("PAT-1")
    assert a("PAT-1").startswith("P-") and "PAT" not in a("PAT-1")
    assert Pseudonymizer(False)("PAT-1") == "PAT-1"


def test_configs_report_yaml_equals_the_default_rules() -> None:
    """The shipped configs/report.yaml is the defaults (a rule added in code is added there)."""
    from pathlib import Path

    from pipeline.config import load_config
    from pipeline.report.config import ReportConfig

    path = Path(__file__).resolve().parents[2] / "configs" / "report.yaml"
    assert load_config(ReportConfig, path, []) == ReportConfig()


def test_guardrail_reasons_make_the_verdict_review() -> None:
    """An input outside the training envelope (or lossy) is 'review' whatever the metrics."""
    import pandas as pd

    from pipeline.report.config import default_rules
    from pipeline.report.verdict import judge

    g = pd.DataFrame(
        [
            {"patient": "A", "n_reasons": 1, "reasons": "pixel spacing (row) 0.66 mm outside"},
            {"patient": "B", "n_reasons": 0, "reasons": ""},
        ]
    )
    rules = [r for r in default_rules() if r.id == "input_needs_review"]
    assert judge("A", rules, {"guardrails": g}).verdict == "review"
    assert judge("B", rules, {"guardrails": g}).verdict == "pass"
    assert judge("C", rules, {"guardrails": g}).results[0].status == "n/a"


def test_guardrail_row_from_header_and_checkpoint_envelope() -> None:
    from pipeline.evaluate.provenance import guardrail_row

    meta = {"KVP": "120", "Rows": 512, "Columns": 512, "TransferSyntaxUID": "1.2.840.10008.1.2.1"}
    env = {"pixel_spacing_mm": [1.48, 1.48], "dose_fraction": [0.25, 0.25]}
    row = guardrail_row("A", meta, (2.5, 0.66, 0.66), {}, env)
    assert row["n_reasons"] == 1 and "0.66 mm outside" in row["reasons"]
    assert row["source"] == "input header + checkpoint envelope"
    manifest = {"review_reasons": "lossy-compressed input (x); kVp 20 outside", "review_notes": ""}
    row = guardrail_row("A", meta, (2.5, 0.66, 0.66), manifest, None)
    assert row["n_reasons"] == 2 and row["source"] == "denoise manifest"
