"""Atomic file writes, hashing and path safety."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import LdctError

_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (the names created or renamed in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_file(tmp: str | Path, target: str | Path, *, durable: bool = False) -> Path:
    """Flush the finished file ``tmp`` and rename it over ``target`` (same file system).

    The one atomic-publish step of the project: readers see the old file or the complete new
    one, never a partial file (also after ``kill -9``). ``durable`` also flushes the directory
    entry, so the rename itself survives power loss (file systems that honour fsync).
    """
    target = Path(target)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    if durable:
        fsync_dir(target.parent)
    return target


@contextmanager
def atomic_path(target: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success publish it over ``target``.

    See :func:`publish_file` (``durable`` as there); on an exception the temporary file is
    removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files get normal permissions
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        publish_file(tmp, target, durable=durable)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write text atomically (temp file + rename)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def atomic_write_bytes(
    target: str | Path, data: bytes | memoryview, *, durable: bool = False
) -> Path:
    """Write bytes atomically (temp file + rename; ``durable`` as in :func:`publish_file`)."""
    with atomic_path(target, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def ensure_inside(root: str | Path, candidate: str | Path) -> Path:
    """Resolve ``candidate`` and refuse it unless it lies inside ``root``."""
    root_r = Path(root).resolve()
    cand_r = Path(candidate).resolve()
    if cand_r != root_r and root_r not in cand_r.parents:
        raise LdctError(f"refusing path outside the output folder {root_r}", path=cand_r)
    return cand_r


def is_within(child: str | Path, parent: str | Path) -> bool:
    """True if ``child`` is ``parent`` or lies below it (after resolving links)."""
    c, p = Path(child).resolve(), Path(parent).resolve()
    return c == p or p in c.parents


def read_text(path: str | Path, what: str, error: type[LdctError] = LdctError) -> str:
    """UTF-8 text of ``path``; unreadable or non-UTF-8 files raise ``error`` naming the file.

    ``what`` names the file's role in the message ("config file", "manifest", ...).
    """
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} ({exc.strerror})", path=p) from exc
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})", path=p) from exc


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a stale lock or staging folder owner)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
