"""DDP under torchrun (2 CPU processes, gloo) equals the single-process step at the same batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_toys import ToyNet, ToyPairs, make_trainer

from pipeline.train.distributed import DistEnv
from pipeline.train.sources import EpochBatches

HERE = Path(__file__).parent


def _torchrun(out: Path, steps: int) -> dict[str, torch.Tensor]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LDCT_NO_PROGRESS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(HERE / "train_ddp_worker.py"),
        str(out),
        str(steps),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out / "weights.pt", weights_only=True)


def test_rank_batches_union_is_the_single_process_batch() -> None:
    ds = ToyPairs(n=32)
    single = EpochBatches(ds, batch_size=8, env=DistEnv(), seed=3).epoch_indices(1)
    ranks = [
        EpochBatches(ds, batch_size=4, env=DistEnv(rank=r, world_size=2), seed=3).epoch_indices(1)
        for r in range(2)
    ]
    for k in range(len(single) // 8):
        union = sorted(ranks[0][4 * k : 4 * k + 4] + ranks[1][4 * k : 4 * k + 4])
        assert union == sorted(single[8 * k : 8 * k + 8])


@pytest.mark.parametrize("steps", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_two_process_steps_equal_single_process_steps(tmp_path: Path, steps: int) -> None:
    ddp = _torchrun(tmp_path / f"ddp{steps}", steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers
    single = make_trainer(
        tmp_path / f"single{steps}", model=lambda: ToyNet(bn=False), batch_size=8, steps=steps
    )
    try:
        single.run()
    finally:
        torch.set_num_threads(threads)
    ref = single.base.state_dict()
    init = make_trainer(tmp_path / "init", model=lambda: ToyNet(bn=False)).base.state_dict()
    for k, v in ref.items():
        assert not torch.equal(v, init[k])  # the step moved the weights
        torch.testing.assert_close(ddp[k], v, rtol=0, atol=1e-6)


@pytest.mark.slow  # torchrun + 2 processes decoding a small simulated cohort
def test_ldct_train_runs_under_torchrun(tmp_path: Path) -> None:
    import yaml

    from pipeline.models.checkpoint import load_checkpoint
    from pipeline.simulate.cohort import make_demo_cohort

    make_demo_cohort(tmp_path / "cohort", n_patients=3, n_slices=3, size=48, seed=1)
    cfg = {
        "output_dir": str(tmp_path / "run"),
        "steps": 4,
        "data": {
            "root": str(tmp_path / "cohort"),
            "patch_size": 16,
            "batch_size": 4,
            "patches_per_slice": 2,
            "num_workers": 0,
            "val_fraction": 0.34,
            "test_fraction": 0.0,
        },
        "model": {"name": "drle", "params": {"channels": 4}},
        "loss": {"perceptual": {"weight": 0.0}},
        "validation": {"every_steps": 2},
        "log": {"tensorboard": False},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LDCT_NO_PROGRESS": "1"}
    ldct = Path(sys.executable).parent / "ldct"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ldct),
        "train",
        "--config",
        str(tmp_path / "train.yaml"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    extra = load_checkpoint(tmp_path / "run" / "final.pt").meta["extra"]
    assert extra["world_size"] == 2 and extra["step"] == 4
