"""Durable renames and path checks of the PACS spool.

Durable file writes are :func:`pipeline.utils.files.atomic_write_bytes` with ``durable=True``
(temp file + fsync + rename + fsync of the directory, the project's one atomic publish): after
it returns the file survives ``kill -9`` and (on file systems that honour fsync) power loss. A
reader never sees a partial file under the final name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.errors import LdctError
from pipeline.utils.files import fsync_dir

#: A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1); safe as a file name.
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_uid(text: object) -> bool:
    """True when ``text`` is a syntactically valid DICOM UID (digits and dots, <= 64 chars)."""
    return isinstance(text, str) and 0 < len(text) <= 64 and bool(_UID_RE.match(text))


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
