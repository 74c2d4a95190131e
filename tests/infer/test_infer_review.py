"""``ldct denoise`` records per-series review reasons: training envelope, lossy input, notes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from infer_helpers import write_series

from pipeline.models.checkpoint import save_checkpoint
from pipeline.models.registry import build_model

SET = ("--set", "read_workers=1")


def _ckpt(path: Path, envelope: dict | None) -> Path:
    model = build_model("drle", channels=4)
    extra = {"training_envelope": envelope} if envelope else {}
    return save_checkpoint(path, model, {"name": "drle", "params": {"channels": 4}}, extra=extra)


def test_series_outside_the_training_envelope_is_marked_for_review(
    tmp_path: Path, run_cli: Callable
) -> None:
    """A model trained at 1.48 mm applied to 0.7 mm pixels: 'review' with the reason."""
    write_series(tmp_path / "in" / "p1" / "ax", n_slices=2)  # 0.7 mm pixels, 120 kVp
    env = {"pixel_spacing_mm": [1.48, 1.48], "dose_fraction": [0.25, 0.25], "source": "simulated"}
    ckpt = _ckpt(tmp_path / "m.pt", env)
    out = tmp_path / "out"
    res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", ckpt, *SET)
    assert res.exit_code == 0, res.stdout + res.stderr
    (row,) = json.loads((out / "manifest.json").read_text())["rows"]
    assert row["review_reasons"] == (
        "pixel spacing (row) 0.7 mm outside the training envelope [1.48, 1.48] mm"
    )
    assert "CTDIvol (0018,9345) not recorded" in row["review_notes"]
    assert "review_reasons" in (out / "manifest.csv").read_text().splitlines()[0]


def test_inside_the_envelope_no_reason_and_no_envelope_is_a_note(
    tmp_path: Path, run_cli: Callable
) -> None:
    write_series(tmp_path / "in" / "p1" / "ax", n_slices=2)
    env = {"pixel_spacing_mm": [0.5, 1.0], "dose_fraction": [0.1, 0.5], "kvp": [100, 140]}
    for name, e in (("inside", env), ("none", None)):
        out = tmp_path / f"out_{name}"
        ckpt = _ckpt(tmp_path / f"{name}.pt", e)
        res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", ckpt, *SET)
        assert res.exit_code == 0, res.stdout + res.stderr
        (row,) = json.loads((out / "manifest.json").read_text())["rows"]
        assert row["review_reasons"] == ""
        has_note = "no training envelope" in row["review_notes"]
        assert has_note == (e is None)
