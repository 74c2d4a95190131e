"""Operating-system errors end with one clear line and exit 4 (RESOURCE), never a traceback."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest
from infer_helpers import identity_checkpoint, write_series

from pipeline.cli.main import os_error_line
from pipeline.errors import ExitCode


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/o/manifest.csv"),
         "/o/manifest.csv: No space left on device (free space on that file system"),
        (OSError(errno.EROFS, "Read-only file system", "/o"),
         "/o: Read-only file system (the file system is read-only: choose a writable --out)"),
        (PermissionError(errno.EACCES, "Permission denied", "/o/x", None),
         "/o/x: Permission denied (check the permissions"),
    ],
)  # fmt: skip
def test_os_error_line(err: OSError, expected: str) -> None:
    assert os_error_line(err).startswith(expected)


@pytest.mark.parametrize("where", ["manifest", "mkdir"])
def test_denoise_os_error_is_one_line_exit_4(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A full disk while the manifest is written / a read-only OUT (simulated: we run as root)."""
    write_series(tmp_path / "in" / "s", n_slices=2)
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    if where == "manifest":
        import pipeline.infer.manifest as manifest

        def full(path: Path, text: str) -> Path:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr(manifest, "atomic_write_text", full)
        expect = "manifest.parts"
    else:
        real_mkdir = Path.mkdir

        def readonly(self: Path, *a: object, **k: object) -> None:
            if self == (tmp_path / "out").resolve():
                raise OSError(errno.EROFS, "Read-only file system", str(self))
            real_mkdir(self, *a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(Path, "mkdir", readonly)
        expect = f"{(tmp_path / 'out').resolve()}: Read-only file system"
    res = run_cli("denoise", tmp_path / "in", "--out", tmp_path / "out", "--model", ckpt,
                  "--set", "read_workers=1")  # fmt: skip
    assert res.exit_code == ExitCode.RESOURCE
    flat = "".join(res.stderr.split())  # the log handler wraps long lines anywhere
    assert "Traceback" not in res.stderr and "".join(expect.split()) in flat, res.stderr
    assert res.stderr.count("ERROR") == 1  # one message
