"""Runner: overlapped stages stay within the volume memory budget; failures stay per series."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from infer_helpers import write_series
from torch import nn

from pipeline.errors import DicomError
from pipeline.infer.config import DenoiseConfig
from pipeline.infer.engine import Denoiser
from pipeline.infer.plan import PlanItem, build_plan
from pipeline.infer.runner import SeriesRunner
from pipeline.infer.stream import SeriesSink
from pipeline.io.discover import scan
from pipeline.io.read import read_series
from pipeline.io.volume import CTVolume
from pipeline.records import TileFields


class _Tracking(SeriesRunner):
    """Counts series in flight (read started .. write finished); slow writes force overlap."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.lock = threading.Lock()
        self.active: set[str] = set()
        self.max_active = 0

    def _read_stage(self, item: PlanItem):  # type: ignore[no-untyped-def]
        with self.lock:
            self.active.add(item.facts.key)
            self.max_active = max(self.max_active, len(self.active))
        return super()._read_stage(item)

    def _write_stage(self, item: PlanItem, sink: SeriesSink, tiles: TileFields):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        try:
            return super()._write_stage(item, sink, tiles)
        finally:
            with self.lock:
                self.active.discard(item.facts.key)


def _runner(root: Path, out: Path, **cfg: object) -> _Tracking:
    config = DenoiseConfig(read_workers=1, **cfg)  # type: ignore[arg-type]
    res = scan([root])
    den = Denoiser(nn.Identity(), name="identity", sha256="0" * 64)
    plan = build_plan(res.series, res.skipped, out, config, den.sha256)
    return _Tracking(plan, den, config, read=lambda r: read_series(r, workers=1, isolate=False))


@pytest.fixture
def four_series(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for i in range(4):  # 8 x 128 x 128 x 5 bytes = 640 KiB in flight per series
        write_series(root / f"s{i}", n_slices=8, rows=128, cols=128, seed=i, description=f"S{i}")
    return root


@pytest.mark.parametrize(("budget_mb", "prefetch", "expected"), [(1, 1, 1), (64, 1, 3), (64, 0, 2)])
def test_series_in_flight_bounded(
    four_series: Path, tmp_path: Path, budget_mb: int, prefetch: int, expected: int
) -> None:
    runner = _runner(four_series, tmp_path / "out", volume_budget_mb=budget_mb, prefetch=prefetch)
    rows = runner.run()
    assert [r.status for r in rows] == ["ok"] * 4
    assert runner.max_active == expected


def test_failure_in_one_series_does_not_stop_the_batch(four_series: Path, tmp_path: Path) -> None:
    runner = _runner(four_series, tmp_path / "out")
    bad = runner.plan.items[1].facts.key

    def read(record: object) -> CTVolume:
        vol = read_series(record, workers=1, isolate=False)  # type: ignore[arg-type]
        if runner.plan.items[1].record is record:
            raise DicomError(f"simulated decoder failure in {bad}")
        return vol

    runner._read = read
    rows = runner.run()
    status = {r.series_key: (r.status, r.reason) for r in rows}
    assert status[bad][0] == "failed" and "simulated decoder failure" in status[bad][1]
    assert sorted(s for s, _ in status.values()) == ["failed", "ok", "ok", "ok"]
    assert len(list((tmp_path / "out").glob("dicom/st-*/se-*"))) == 3


class _AddOne(nn.Module):
    """+1.0 in model range = +4095 HU: every voxel leaves a 12-bit stored range."""

    def forward(self, x):  # type: ignore[no-untyped-def]
        return x + 1.0


def test_clipped_voxels_are_counted(tmp_path: Path) -> None:
    import numpy as np

    root = tmp_path / "in"
    write_series(root / "s", n_slices=2, rows=16, cols=16, bits_stored=12, padding=True)
    config = DenoiseConfig(read_workers=1)
    res = scan([root])
    den = Denoiser(_AddOne(), name="addone", sha256="1" * 64)
    plan = build_plan(res.series, res.skipped, tmp_path / "out", config, den.sha256)
    (row,) = SeriesRunner(plan, den, config).run()
    vol = read_series(res.series[0], workers=1, isolate=False)
    n_inside = int((~vol.padding_mask).sum())  # padding is restored, not clipped
    assert row.status == "ok" and row.n_clipped == n_inside > 0
    derived = scan([row.output_path]).series[0]
    with pytest.raises(DicomError, match="no air anywhere in the series"):
        read_series(derived, workers=1, isolate=False)  # all tissue clipped to 3071: implausible
    out = read_series(derived, workers=1, isolate=False, check_plausible=False)
    assert np.all(out.hu[~vol.padding_mask] == 3071.0)  # clipped to the 12-bit maximum


def test_series_without_air_fails_unless_hu_checks_are_off(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """A tight-FOV series with no voxel near air: refused by default (reason in the manifest),
    denoised with ``check_plausible_hu: false``."""
    import numpy as np

    from pipeline.io.write import write_new_series

    src = tmp_path / "in"
    hu = 40.0 + np.random.default_rng(0).normal(0.0, 10.0, (3, 24, 24)).round()
    kw = {"patient_id": "P1", "patient_name": "A^B", "series_description": "zoom"}
    write_new_series(hu.astype(np.float32), (2.0, 0.4, 0.4), (0.0, 0.0, 0.0), np.eye(3), src, **kw)
    refused = run_cli("denoise", src, "--out", tmp_path / "o1")
    assert refused.exit_code == 3
    assert "no air anywhere in the series" in (tmp_path / "o1" / "manifest.csv").read_text()
    ok = run_cli("denoise", src, "--out", tmp_path / "o2", "--set", "check_plausible_hu=false")
    assert ok.exit_code == 0, ok.stderr
