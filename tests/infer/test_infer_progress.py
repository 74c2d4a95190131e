"""`ldct denoise` when stderr is a log: a line per series with counts and rate; dry-run on a
half-finished output says which series a rerun skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infer_helpers import write_series


def _ldct(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipeline.cli.main", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_progress_lines_and_dry_run_after_a_partial_run(tmp_path: Path) -> None:
    for i in range(2):
        write_series(tmp_path / "in" / f"s{i}", n_slices=3, seed=i, series_number=2 + i)
    env = {k: v for k, v in os.environ.items() if k not in ("LDCT_NO_PROGRESS", "LDCT_PROGRESS")}
    out = tmp_path / "out"
    first = _ldct("denoise", str(tmp_path / "in" / "s0"), "--out", str(out), env=env)
    assert first.returncode == 0, first.stderr
    assert "series 1/1 ok: s0 (3 x 32x32)" in first.stderr  # stderr is a pipe: log lines
    assert "denoise: done, 3 slice, 3 in" in first.stderr
    plan = _ldct("denoise", str(tmp_path / "in"), "--out", str(out), "--dry-run", env=env)
    assert plan.returncode == 0, plan.stderr
    lines = [ln for ln in plan.stdout.splitlines() if "s0 ->" in ln or "s1 ->" in ln]
    assert len(lines) == 2
    assert next(ln for ln in lines if "s0 ->" in ln).split()[0] == "done"
    assert next(ln for ln in lines if "s1 ->" in ln).split()[0] == "DENOISE"
    assert "1 series already done (verified): a rerun skips them" in plan.stdout
