"""A run killed with SIGKILL mid-run and resumed ends with the uninterrupted run's weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_toys import ToyNet, make_trainer

from pipeline.train.state import load_state

HERE = Path(__file__).parent
STEPS = 24


def _job(out: Path, *extra: str, sleep_s: float = 0.0) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LDCT_NO_PROGRESS": "1"}
    cmd = [sys.executable, str(HERE / "train_toy_job.py"), str(out), str(STEPS), str(sleep_s)]
    return subprocess.Popen([*cmd, *extra], env=env, stderr=subprocess.PIPE)


def _reference(out: Path) -> dict[str, torch.Tensor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the job
    try:
        tr = make_trainer(
            out, model=lambda: ToyNet(dropout=0.1), steps=STEPS, ema={"enabled": True, "decay": 0.9}
        )
        tr.run()
    finally:
        torch.set_num_threads(threads)
    return tr.base.state_dict()


@pytest.mark.slow  # two subprocesses (~20 s); the fast in-process variant is in test_train_loop
def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _job(run, sleep_s=0.08)
    state = run / "state" / "last.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if state.exists() and load_state(state)["progress"]["step"] >= 8:
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_state(state)["progress"]["step"]  # still a complete, loadable file
    assert 8 <= killed_at < STEPS
    assert not (run / "weights.pt").exists()
    resumed = _job(run, "--resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()[-3000:]
    got = torch.load(run / "weights.pt", weights_only=True)
    ref = _reference(tmp_path / "ref")
    for k, v in ref.items():
        assert torch.equal(got[k], v), k


@pytest.mark.parametrize("stale", ["truncated", "foreign"])
def test_resume_refuses_a_broken_state_file(tmp_path: Path, stale: str) -> None:
    from pipeline.errors import CheckpointError

    state = tmp_path / "state" / "last.pt"
    state.parent.mkdir(parents=True)
    if stale == "truncated":
        make_trainer(tmp_path, steps=4).run()
        state.write_bytes(state.read_bytes()[:100])
    else:
        torch.save({"format": "something-else"}, state)
    with pytest.raises(CheckpointError, match="resume"):
        make_trainer(tmp_path, steps=8).run(resume=True)
