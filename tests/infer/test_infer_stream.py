"""Streaming writes within one series: same files as the whole-series writer, written while the
model still runs, and a failure mid-series (model or writer) leaves nothing visible."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from infer_helpers import write_series
from torch import nn

from pipeline.errors import DicomError
from pipeline.infer.config import DenoiseConfig
from pipeline.infer.engine import Denoiser
from pipeline.infer.plan import build_plan
from pipeline.infer.publish import STAGING_DIR
from pipeline.infer.runner import SeriesRunner
from pipeline.io.derived_header import DerivedInfo
from pipeline.io.discover import scan
from pipeline.io.read import read_series, read_volume
from pipeline.io.write import DerivedSeriesWriter, write_derived_series


def _read(record: object):  # type: ignore[no-untyped-def]
    return read_series(record, workers=1, isolate=False)  # type: ignore[arg-type]


def test_slice_writer_matches_whole_series_writer_in_any_order(tmp_path: Path) -> None:
    write_series(tmp_path / "in", n_slices=5, rows=24, cols=24, padding=True, bits_stored=12)
    vol = read_volume(tmp_path / "in")
    hu = vol.hu + 5000.0 * (np.arange(vol.hu.size).reshape(vol.hu.shape) % 7 == 0)  # clips
    created = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    kw = {
        "series_description": "D",
        "derivation_description": "x",
        "uid_key": "k",
        "derived": DerivedInfo(model_name="test", created=created),  # same creation time
    }
    whole = write_derived_series(vol, hu, tmp_path / "whole", **kw)  # type: ignore[arg-type]
    writer = DerivedSeriesWriter(vol, tmp_path / "stream", **kw)  # type: ignore[arg-type]
    for k in (3, 0, 4, 1):
        writer.write_slice(k, hu[k])
    with pytest.raises(DicomError, match="1 of 5 slices not written"):
        writer.finish()
    writer.write_slice(2, hu[2])
    with pytest.raises(DicomError, match="written twice"):
        writer.write_slice(2, hu[2])
    streamed = writer.finish()
    assert streamed.n_clipped == whole.n_clipped > 0
    assert streamed.sop_instance_uids == whole.sop_instance_uids
    assert streamed.series_instance_uid == whole.series_instance_uid
    assert [p.name for p in streamed.paths] == [p.name for p in whole.paths]
    for a, b in zip(whole.paths, streamed.paths, strict=True):
        assert a.read_bytes() == b.read_bytes()


class _Watching(nn.Module):
    """Identity that records, at each forward pass, how many slices are already on disk."""

    def __init__(self, out_root: Path, fail_at: int | None = None) -> None:
        super().__init__()
        self.out_root = out_root
        self.fail_at = fail_at
        self.seen: list[int] = []

    def __deepcopy__(self, memo: dict) -> _Watching:  # type: ignore[type-arg]
        return self  # the Denoiser runs a copy; keep recording here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == 64:  # a real batch (not a receptive-field/memory probe)
            if self.fail_at is not None and len(self.seen) == self.fail_at:
                raise RuntimeError("simulated model failure")
            self.seen.append(len(list((self.out_root / STAGING_DIR).rglob("IM*.dcm"))))
            time.sleep(0.1)  # a slow model (sleep releases the GIL, as torch kernels do)
        return x


def _run(tmp_path: Path, model: nn.Module, n_slices: int = 12) -> tuple[SeriesRunner, Path]:
    root, out = tmp_path / "in", tmp_path / "out"
    write_series(root / "s", n_slices=n_slices, rows=64, cols=64, padding=True)
    config = DenoiseConfig(read_workers=1, batch_size=2)
    res = scan([root])
    den = Denoiser(model, name="watch", sha256="2" * 64, batch_size=2)
    plan = build_plan(res.series, res.skipped, out, config, den.sha256)
    return SeriesRunner(plan, den, config, read=_read), out


def test_slices_are_written_while_the_model_still_runs(tmp_path: Path) -> None:
    model = _Watching(tmp_path / "out")
    runner, out = _run(tmp_path, model)
    (row,) = runner.run()
    assert row.status == "ok", row.reason
    assert len(model.seen) == 6 and model.seen[0] == 0
    # batches go to the writer thread as they finish: after 5 batches of 0.1 s, slices of the
    # first ones are on disk before the last batch runs (the whole-series writer: none yet)
    assert model.seen[-1] > 0
    written = read_volume(Path(row.output_path))
    source = read_volume(tmp_path / "in" / "s")
    assert np.array_equal(written.hu, source.hu)  # identity model, slope 1: exact
    assert np.array_equal(written.padding_mask, source.padding_mask)
    assert not list((out / STAGING_DIR).iterdir())


def test_model_failure_mid_series_leaves_nothing_visible(tmp_path: Path) -> None:
    runner, out = _run(tmp_path, _Watching(tmp_path / "out", fail_at=3))
    (row,) = runner.run()
    assert row.status == "failed" and row.reason.startswith("infer:")
    assert "simulated model failure" in row.reason
    assert not list(out.glob("dicom/st-*/se-*"))
    assert not list((out / STAGING_DIR).iterdir())  # the partly written staging folder is gone


def test_writer_failure_mid_series_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = DerivedSeriesWriter.write_slice

    def failing(self: DerivedSeriesWriter, k: int, hu_k: np.ndarray):  # type: ignore[no-untyped-def]
        if k == 5:
            raise OSError("simulated disk full")
        return original(self, k, hu_k)

    monkeypatch.setattr(DerivedSeriesWriter, "write_slice", failing)
    runner, out = _run(tmp_path, nn.Identity())
    (row,) = runner.run()
    assert row.status == "failed" and row.reason.startswith("write:")
    assert "simulated disk full" in row.reason
    assert not list(out.glob("dicom/st-*/se-*"))
    assert not list((out / STAGING_DIR).iterdir())
