"""Models are checked before use: finite weights, plausible size (refused with exit 4 before
allocating), and each series' output (non-finite or implausible HU fails the series)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from infer_helpers import identity_checkpoint, write_series
from torch import nn

from pipeline.errors import CheckpointError, ExitCode
from pipeline.models.checkpoint import load_checkpoint, save_checkpoint
from pipeline.models.registry import build_model


def _nan_checkpoint(path: Path) -> Path:
    model = build_model("drle", channels=4)
    with torch.no_grad():
        model.out.weight[0, 0, 0, 0] = float("nan")
    return save_checkpoint(path, model, {"name": "drle", "params": {"channels": 4}})


def _huge_checkpoint(path: Path) -> Path:
    """Small weights, but model_params asking for 30,000 channels (~9 x 30000^2 x 6 dilated
    3x3 convs = 48.6 G parameters)."""
    ckpt = identity_checkpoint(path)
    payload = torch.load(ckpt, weights_only=True)
    payload["model_params"] = {"channels": 30000}
    torch.save(payload, ckpt)
    return ckpt


def test_nan_weights_refused(tmp_path: Path) -> None:
    numel = build_model("drle", channels=4).out.weight.numel()
    with pytest.raises(CheckpointError, match=r"non-finite values \(NaN/inf\) in 1 tensor\(s\): "
                       rf"out.weight \(1 of {numel}\)"):  # fmt: skip
        load_checkpoint(_nan_checkpoint(tmp_path / "nan.pt"))


def test_huge_model_refused_before_allocating(tmp_path: Path) -> None:
    ckpt = _huge_checkpoint(tmp_path / "huge.pt")
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"implausible model: 'drle' with \{'channels': "
                       r"30000\} has 48,605,[\d,]+ parameters \(181\.1 GiB"):  # fmt: skip
        load_checkpoint(ckpt)
    assert time.perf_counter() - t0 < 10  # nothing was allocated


@pytest.mark.parametrize(
    ("make", "expected"),
    [(_nan_checkpoint, "non-finite values"), (_huge_checkpoint, "implausible model")],
)
def test_denoise_refuses_bad_checkpoint_exit_4(
    tmp_path: Path, run_cli: Callable, make: Callable[[Path], Path], expected: str
) -> None:
    write_series(tmp_path / "in" / "s", n_slices=2)
    res = run_cli("denoise", tmp_path / "in", "--out", tmp_path / "out", "--model",
                  make(tmp_path / "m.pt"))  # fmt: skip
    assert res.exit_code == ExitCode.RESOURCE == 4
    assert expected in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()  # refused before any work


class _Garbage(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0 + self.value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), "infer: model output not finite: "),
        (100.0, "infer: model output implausible: HU 408476..408476"),  # 100 model units
    ],
)
def test_garbage_output_fails_the_series(tmp_path: Path, value: float, expected: str) -> None:
    from pipeline.infer.config import DenoiseConfig
    from pipeline.infer.engine import Denoiser
    from pipeline.infer.plan import build_plan
    from pipeline.infer.runner import SeriesRunner
    from pipeline.io.discover import scan

    write_series(tmp_path / "in" / "s", n_slices=2)
    res = scan([tmp_path / "in"])
    config = DenoiseConfig(read_workers=1)
    den = Denoiser(_Garbage(value), name="garbage", sha256="2" * 64)
    plan = build_plan(res.series, res.skipped, tmp_path / "out", config, den.sha256)
    (row,) = SeriesRunner(plan, den, config).run()
    assert row.status == "failed" and row.reason.startswith(expected), row.reason
    assert not list((tmp_path / "out").rglob("*.dcm"))  # nothing published
