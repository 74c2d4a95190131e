"""Real operating-system failures under ``ldct denoise`` (slow: subprocesses and mounts).

* a read-only OUT (a tmpfs remounted read-only) and a full disk (a tiny tmpfs) end with one
  clear line and a documented exit code, never a traceback; the inputs are unchanged;
* two processes denoising into one OUT at once leave the same bytes as one process alone.

The mount tests need root (CAP_SYS_ADMIN) and are skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from infer_helpers import identity_checkpoint, tree_hashes, write_series

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _ldct(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LDCT_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli.main", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1, stderr
    return " ".join(stderr.split())


def test_read_only_out(tmp_path: Path) -> None:
    write_series(tmp_path / "in" / "s", n_slices=3)
    before = tree_hashes(tmp_path / "in")
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    with _tmpfs(tmp_path / "ro", "1m") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        res = _ldct("denoise", tmp_path / "in", "--out", ro / "out", "--model", ckpt,
                    "--set", "read_workers=1")  # fmt: skip
    assert res.returncode == 4, res.stderr
    assert "Read-only file system" in _one_error_line(res.stderr)
    assert tree_hashes(tmp_path / "in") == before


def test_full_disk(tmp_path: Path) -> None:
    """Series bigger than the disk: each fails with ENOSPC, or the manifest does (exit 4)."""
    for i in range(2):
        write_series(tmp_path / "in" / f"s{i}", n_slices=12, rows=128, cols=128, seed=i,
                     description=f"S{i}")  # fmt: skip
    before = tree_hashes(tmp_path / "in")
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    with _tmpfs(tmp_path / "small", "200k") as small:
        res = _ldct("denoise", tmp_path / "in", "--out", small / "out", "--model", ckpt,
                    "--set", "read_workers=1")  # fmt: skip
        manifest = small / "out" / "manifest.json"
        rows = json.loads(manifest.read_text())["rows"] if manifest.exists() else []
    text = " ".join((res.stdout + res.stderr).split())
    assert "Traceback" not in res.stderr, res.stderr
    assert "No space left on device" in text, text
    if res.returncode == 4:  # the manifest itself did not fit
        _one_error_line(res.stderr)
    else:  # the manifest fit: every series that did not is failed with the reason
        assert res.returncode == 1, text
        assert any(r["status"] == "failed" and "No space left" in r["reason"] for r in rows)
    assert tree_hashes(tmp_path / "in") == before


def test_concurrent_runs_into_one_out(tmp_path: Path) -> None:
    for i in range(3):
        write_series(tmp_path / "in" / f"s{i}", n_slices=4, seed=i, description=f"S{i}")
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    ref = _ldct("denoise", tmp_path / "in", "--out", tmp_path / "ref", "--model", ckpt)
    assert ref.returncode == 0, ref.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO), "LDCT_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "pipeline.cli.main", "denoise", str(tmp_path / "in"),
           "--out", str(tmp_path / "both"), "--model", str(ckpt)]  # fmt: skip
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]

    def dicom(root: Path) -> dict[str, tuple[str, str, str]]:
        """Per file: instance UID, series UID and pixel bytes (creation times differ per run)."""
        out = {}
        for p in sorted((root / "dicom").rglob("*.dcm")):
            ds = pydicom.dcmread(p)
            digest = hashlib.sha256(ds.PixelData).hexdigest()
            out[str(p.relative_to(root))] = (ds.SOPInstanceUID, ds.SeriesInstanceUID, digest)
        return out

    assert dicom(tmp_path / "both") == dicom(tmp_path / "ref") != {}
    assert not list((tmp_path / "both").rglob("*.tmp"))  # no torn temporary files left
