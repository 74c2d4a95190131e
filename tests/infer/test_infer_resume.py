"""kill -9 in the middle of `ldct denoise` leaves no half-written series; a rerun completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from infer_helpers import identity_checkpoint, write_series

from pipeline.infer.publish import MARKER, STAGING_DIR, read_completion, verify_completed

# Runs the real CLI with writes slowed down (so the kill lands inside a series being written).
_SLOW_CLI = textwrap.dedent(
    """
    import sys, time
    import pipeline.io.dicom_encode as w
    orig = w.write_file
    def slow(ds, path):
        time.sleep(0.15)
        orig(ds, path)
    w.write_file = slow
    from pipeline.cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _published(out: Path) -> list[Path]:
    """DICOM folders of published series (their record folder holds the marker)."""
    records = [p for p in out.glob("series/st-*/se-*") if (p / MARKER).is_file()]
    return sorted(out / "dicom" / p.relative_to(out / "series") for p in records)


def test_kill_9_then_resume(tmp_path: Path, run_cli: Callable) -> None:
    root = tmp_path / "in"
    for i in range(4):
        write_series(root / f"s{i}", n_slices=4, rows=24, cols=24, seed=i, description=f"S{i}")
    out = tmp_path / "out"
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    args = [
        "denoise",
        str(root),
        "--out",
        str(out),
        "--model",
        str(ckpt),
        "--set",
        "read_workers=1",
    ]
    env = {**os.environ, "LDCT_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_CLI, *args], env=env)
    killed_mid_write = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            staging = list((out / STAGING_DIR).glob("*/dicom/*.dcm")) if out.exists() else []
            if _published(out) and staging:
                proc.send_signal(signal.SIGKILL)
                killed_mid_write = True
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_mid_write, "the run ended before it could be killed mid-write"
    visible = _published(out)
    assert 1 <= len(visible) < 4
    for d in visible:  # everything visible is complete and verifies
        record = out / "series" / d.relative_to(out / "dicom")
        comp = read_completion(record)
        assert comp is not None
        assert verify_completed(record, d, comp.fingerprint) is not None
        assert len(list(d.glob("*.dcm"))) == 4
    assert list((out / STAGING_DIR).iterdir())  # the half-written series sits in staging only

    res = run_cli(*args)
    assert res.exit_code == 0, res.stdout + res.stderr
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    status = {r["output_path"]: r["status"] for r in rows}
    assert len(rows) == 4 and set(status.values()) <= {"ok", "skipped"}
    assert all(status[str(d)] == "skipped" for d in visible)  # resumed, not redone
    assert len(_published(out)) == 4
    assert not list((out / STAGING_DIR).iterdir())  # leftovers of the killed run removed
