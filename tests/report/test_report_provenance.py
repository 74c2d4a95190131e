"""Provenance on the report: the model from the denoise manifest, VGG weights as recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.evaluate.provenance import denoise_rows
from pipeline.report.render import vgg_origin


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [("none", "none (no perceptual loss)"), ("imagenet", "imagenet"),
     ("random (untrained)", "random (untrained)"), (None, "not recorded")],
)  # fmt: skip
def test_vgg_origin_reads_what_the_checkpoint_records(recorded: str | None, shown: str) -> None:
    assert vgg_origin({"vgg_weights": recorded}) == shown
    assert vgg_origin({"models": {"P1": {"vgg_weights": recorded}}}, "P1") == shown
    assert vgg_origin({"vgg_weights": {"vgg_weights": recorded}}) == shown  # older summaries


def test_denoise_manifest_run_gives_each_row_its_models_vgg_weights(tmp_path: Path) -> None:
    manifest = {
        "runs": [{"model_name": "drle", "model_sha256": "abc", "vgg_weights": "none"}],
        "rows": [{"derived_series_uid": "1.2.3", "model_name": "drle", "model_sha256": "abc"}],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    rows = denoise_rows(tmp_path)
    assert rows["1.2.3"]["vgg_weights"] == "none"


def test_index_names_the_model_from_the_manifest(evaluated_cohort, tmp_path) -> None:
    from pipeline.report.config import ReportConfig
    from pipeline.report.render import provenance_rows
    from pipeline.report.tables import load_eval

    ev = load_eval(evaluated_cohort.evaluation)
    ev.summary["provenance"]["models"] = {
        p: {"model_name": "drle", "model_sha256": "0123456789abcdef99", "vgg_weights": "none"}
        for p in ev.patients
    }
    rows = dict(provenance_rows(ev, ReportConfig(), None, "now"))
    assert rows["model"].startswith("drle (sha256 0123456789abcdef)")
    assert rows["VGG16 weights (training)"] == "none (no perceptual loss)"
