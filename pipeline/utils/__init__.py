"""Small shared helpers: atomic files, hashing, path safety, progress, shapes, safe text.

Module map:

* ``files`` -- the one atomic publish (:func:`publish_file`, :func:`atomic_path`), hashing,
  path checks; ``progress`` -- a bar on a terminal, log lines elsewhere; ``shapes`` -- the
  shape-check helper; ``text`` -- text safe to print and log.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.utils.files import (
        atomic_path,
        atomic_write_bytes,
        atomic_write_text,
        ensure_inside,
        fsync_dir,
        is_within,
        pid_alive,
        publish_file,
        read_text,
        sha256_file,
    )
    from pipeline.utils.progress import LineProgress, progress_bar
    from pipeline.utils.shapes import check_shape
    from pipeline.utils.text import printable

_EXPORTS: dict[str, tuple[str, ...]] = {
    "files": (
        "atomic_path",
        "atomic_write_bytes",
        "atomic_write_text",
        "ensure_inside",
        "fsync_dir",
        "is_within",
        "pid_alive",
        "publish_file",
        "read_text",
        "sha256_file",
    ),
    "progress": ("LineProgress", "progress_bar"),
    "shapes": ("check_shape",),
    "text": ("printable",),
}

__all__ = [
    "LineProgress",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_shape",
    "ensure_inside",
    "fsync_dir",
    "is_within",
    "pid_alive",
    "printable",
    "progress_bar",
    "publish_file",
    "read_text",
    "sha256_file",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
