"""``--ignore-frame-of-reference``: separately acquired low/full series of one geometry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.io.write import write_new_series


@pytest.fixture(scope="module")
def separate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Low and full series of one patient, same geometry, each with its own frame of reference."""
    root = tmp_path_factory.mktemp("for")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    body = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 28**2, 40.0, -1000.0)
    for name, sd, frame in (
        ("low", 20.0, "1.2.826.0.1.3680043.8.498.1"),
        ("full", 10.0, "1.2.826.0.1.3680043.8.498.2"),
    ):
        hu = np.stack([body + rng.normal(0, sd, body.shape) * (body > -500) for _ in range(4)])
        write_new_series(
            np.round(hu).astype(np.float32),
            (2.5, 1.0, 1.0),
            (-32.0, -32.0, 0.0),
            np.eye(3),
            root / name,
            patient_id="P1",
            patient_name="Test^Frame",
            series_description=name,
            frame_of_reference_uid=frame,
            uid_key=name,
        )
    return root / "low", root / "full"


def test_refusal_names_the_flag_and_the_flag_accepts(
    separate: tuple[Path, Path], tmp_path: Path, run_cli: Callable
) -> None:
    low, full = separate
    res = run_cli("evaluate", "--low", low, "--full", full, "--out", tmp_path / "refused")
    assert res.exit_code != 0
    assert "--ignore-frame-of-reference" in res.stderr + res.stdout
    assert "require_same_frame_of_reference" not in (res.stderr + res.stdout).split("Python")[0]
    out = tmp_path / "ok"
    res = run_cli(
        "evaluate", "--low", low, "--full", full, "--out", out, "--ignore-frame-of-reference"
    )
    assert res.exit_code == 0, res.stdout + res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ignore_frame_of_reference"] is True
    assert "--ignore-frame-of-reference" in summary["pairing_rule"]
    assert summary["patients"][0]["n_slices"] == 4


def test_qa_and_dataset_check_have_the_same_flag(
    run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich would truncate the long option name
    for cmd in ("qa", "evaluate", "dataset"):
        args = (cmd, "check", "--help") if cmd == "dataset" else (cmd, "--help")
        res = run_cli(*args)
        assert "--ignore-frame-of-reference" in res.stdout, cmd
