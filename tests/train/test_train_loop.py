"""Training loop: exact resume, non-finite handling, EMA, schedule, metrics log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from train_toys import ToyNet, ToyObjective, make_trainer, weights

from pipeline.errors import TrainingError
from pipeline.train.metrics_log import read_jsonl
from pipeline.train.state import load_state


class _Interrupt(Exception):
    pass


def _interrupt_after(trainer: Any, n: int) -> None:
    """Make the trainer's batch source raise after ``n`` batches (a crash mid-run)."""
    orig = trainer.batches.iterate
    count = {"n": 0}

    def iterate(epoch: int, start: int = 0) -> Iterator[Any]:
        for b in orig(epoch, start):
            if count["n"] >= n:
                raise _Interrupt
            count["n"] += 1
            yield b

    trainer.batches.iterate = iterate


@pytest.mark.parametrize("ema", [False, True])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path, ema: bool) -> None:
    # 32 samples / batch 4 = 8 batches per epoch: 12 steps cross an epoch boundary; dropout
    # consumes the global RNG, so RNG restore is checked too.
    extra = {"ema": {"enabled": ema, "decay": 0.9}, "schedule": {"kind": "cosine"}}
    ref = make_trainer(tmp_path / "a", model=lambda: ToyNet(dropout=0.2), **extra)
    ref.run()
    crashed = make_trainer(tmp_path / "b", model=lambda: ToyNet(dropout=0.2), **extra)
    _interrupt_after(crashed, 10)  # last resume state: step 8 (every 4), in epoch 1
    with pytest.raises(_Interrupt):
        crashed.run()
    assert load_state(tmp_path / "b" / "state" / "last.pt")["progress"]["step"] == 8
    torch.manual_seed(12345)  # a different RNG state before resuming must not matter
    resumed = make_trainer(tmp_path / "b", model=lambda: ToyNet(dropout=0.2), **extra)
    result = resumed.run(resume=True)
    assert result.steps == 12
    wa, wb = weights(ref), weights(resumed)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    if ema:
        assert ref.ema is not None and resumed.ema is not None
        for k, v in ref.ema.state_dict().items():
            assert torch.equal(v, resumed.ema.state_dict()[k]), k
    # the log of the resumed run has each train step once, like the uninterrupted one
    steps_a = [r["step"] for r in read_jsonl(tmp_path / "a" / "metrics.jsonl")]
    steps_b = [r["step"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")]
    assert steps_a == steps_b == [2, 4, 6, 8, 10, 12]


def test_nonfinite_loss_stops_with_step_and_component(tmp_path: Path) -> None:
    tr = make_trainer(tmp_path, objective=ToyObjective(poison={6: "l1"}))
    with pytest.raises(TrainingError, match=r"non-finite loss: l1=nan at step 6"):
        tr.run()
    state = load_state(tmp_path / "state" / "last.pt")
    assert state["progress"]["step"] == 4  # the last good state, not the broken one
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_nonfinite_gradient_names_the_parameter(tmp_path: Path) -> None:
    calls = {"n": 0}

    def poison(grad: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 3 else grad

    def factory() -> ToyNet:
        net = ToyNet()
        net.c1.weight.register_hook(poison)
        return net

    tr = make_trainer(tmp_path, model=factory)
    with pytest.raises(TrainingError, match=r"non-finite gradients in c1\.weight at step 3"):
        tr.run()


def test_skip_policy_skips_the_batch_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        tr = make_trainer(tmp_path, objective=ToyObjective(poison={5: "mse"}), nonfinite="skip")
        result = tr.run()
    assert result.skipped == 1 and result.steps == 12
    assert "step 5: skipped the batch, non-finite loss: mse=nan" in caplog.text
    assert all(torch.isfinite(v).all() for v in weights(tr).values() if v.is_floating_point())


def test_skip_policy_gives_up_after_max_skipped(tmp_path: Path) -> None:
    poison = {i: "mse" for i in range(1, 13)}
    tr = make_trainer(tmp_path, objective=ToyObjective(poison), nonfinite="skip", max_skipped=3)
    with pytest.raises(TrainingError, match="more than max_skipped=3"):
        tr.run()


def test_ema_matches_manual_average(tmp_path: Path) -> None:
    tr = make_trainer(
        tmp_path, steps=3, ema={"enabled": True, "decay": 0.5}, checkpoint={"every_steps": 1}
    )
    snapshots = []
    tr.optimizer.register_step_post_hook(
        lambda *_: snapshots.append(tr.base.c1.weight.detach().clone())
    )
    w0 = tr.base.c1.weight.detach().clone()
    tr.run()
    expect = w0
    for w in snapshots:
        expect = 0.5 * expect + 0.5 * w
    assert tr.ema is not None
    torch.testing.assert_close(tr.ema.shadow["c1.weight"], expect, rtol=0, atol=1e-7)


def test_grad_clip_bounds_the_update(tmp_path: Path) -> None:
    # SGD-like check through Adam is indirect; instead check the clipped gradient norm directly.
    tr = make_trainer(tmp_path, steps=1, grad_clip=1e-3)
    seen = {}

    def spy(*_: Any) -> None:
        norms = [p.grad.norm() for p in tr.params if p.grad is not None]
        seen["norm"] = float(torch.linalg.vector_norm(torch.stack(norms)))

    tr.optimizer.register_step_pre_hook(spy)
    tr.run()
    assert seen["norm"] == pytest.approx(1e-3, rel=1e-3)


def test_multistep_schedule_reference_settings(tmp_path: Path) -> None:
    tr = make_trainer(
        tmp_path,
        steps=6,
        optim={"lr": 1e-3, "betas": [0.5, 0.999]},
        schedule={"kind": "multistep", "milestones": [3], "gamma": 0.1},
    )
    tr.run()
    lrs = [r["lr"] for r in read_jsonl(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert lrs == pytest.approx([1e-3, (1e-3 + 1e-4) / 2, 1e-4])  # mean lr per 2-step window


def test_metrics_log_has_components_and_rate(tmp_path: Path) -> None:
    make_trainer(tmp_path, steps=4).run()
    rec = read_jsonl(tmp_path / "metrics.jsonl")[-1]
    assert {"loss", "loss_mse", "loss_l1", "grad_norm", "samples_per_s"} <= set(rec)
    assert rec["loss"] == pytest.approx(rec["loss_mse"] + rec["loss_l1"], rel=1e-5)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["kind", "step"] and "loss_mse" in header
