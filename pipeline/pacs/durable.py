"""Durable file writes: temp file + fsync + rename + fsync of the directory.

After :func:`write_durable` returns, the file survives ``kill -9`` and (on file systems that honour
fsync) power loss: the data was flushed before the rename made it visible, and the directory entry
was flushed after. A reader never sees a partial file under the final name.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from pipeline.errors import LdctError

#: A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1); safe as a file name.
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_uid(text: object) -> bool:
    """True when ``text`` is a syntactically valid DICOM UID (digits and dots, <= 64 chars)."""
    return isinstance(text, str) and 0 < len(text) <= 64 and bool(_UID_RE.match(text))


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (the names created or renamed in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(target: Path, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``target`` durably (see module doc); returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(target.parent)
    return target


def rename_durable(src: Path, dst: Path) -> Path:
    """Rename ``src`` to ``dst`` (same file system) and flush both parent directories."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)
    return dst


def inside(root: Path, candidate: Path) -> Path:
    """``candidate`` resolved; refused unless it lies inside ``root`` (no writes outside)."""
    r, c = root.resolve(), candidate.resolve()
    if c != r and r not in c.parents:
        raise LdctError(f"refusing to write outside {r}", path=c)
    return c
