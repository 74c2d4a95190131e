"""Publish a series atomically: write into a staging folder inside OUT, verify, then rename.

A series folder becomes visible only through one ``os.rename`` of a complete, verified staging
folder that already holds its completion marker (``.ldct-complete.json``: input fingerprint, model
hash, every file's SHA-256). So a run killed at any point (``kill -9``) leaves no half-written
series, only a hidden staging folder that the next run removes. On a rerun, a series whose marker
matches the same input fingerprint and whose files still hash to the recorded values is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import LdctError
from pipeline.utils.files import atomic_write_text, ensure_inside, sha256_file

log = logging.getLogger(__name__)

MARKER = ".ldct-complete.json"
STAGING_DIR = ".ldct-staging"


@dataclass
class Completion:
    """The completion marker of a published series."""

    fingerprint: str  # hash of the input files + model + output options (see plan.fingerprint)
    series_key: str
    derived_series_uid: str
    n_slices: int
    n_clipped: int
    files: dict[str, str] = field(default_factory=dict)  # name relative to the folder -> sha256
    extra: dict[str, Any] = field(default_factory=dict)


def new_staging(out_root: Path, key: str) -> Path:
    """A fresh hidden staging folder under ``OUT`` named after this host/process."""
    host = "".join(c for c in socket.gethostname() if c.isalnum())[:20] or "host"
    path = out_root / STAGING_DIR / f"{key}.{host}.{os.getpid()}.{secrets.token_hex(4)}"
    ensure_inside(out_root, path)
    path.mkdir(parents=True)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(out_root: Path) -> list[Path]:
    """Remove staging folders left by dead processes of this host (e.g. after ``kill -9``)."""
    removed: list[Path] = []
    root = out_root / STAGING_DIR
    if not root.is_dir():
        return removed
    host = "".join(c for c in socket.gethostname() if c.isalnum())[:20] or "host"
    for entry in root.iterdir():
        parts = entry.name.split(".")
        if len(parts) != 4 or parts[1] != host or not parts[2].isdigit():
            continue
        if int(parts[2]) == os.getpid() or _pid_alive(int(parts[2])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        log.info("removed %d staging folder(s) of interrupted runs", len(removed))
    return removed


def hash_files(folder: Path) -> dict[str, str]:
    """SHA-256 of every regular file below ``folder`` (names relative, marker excluded)."""
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MARKER:
            out[p.relative_to(folder).as_posix()] = sha256_file(p)
    return out


def publish(staging: Path, final: Path, completion: Completion, out_root: Path) -> Path:
    """Write the marker into ``staging`` and rename it to ``final`` (replacing a stale one)."""
    ensure_inside(out_root, final)
    completion.files = hash_files(staging)
    atomic_write_text(staging / MARKER, json.dumps(asdict(completion), indent=1))
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        # an earlier output that failed verification: move it away first (rename is atomic)
        trash = out_root / STAGING_DIR / f"replaced-{final.name}.{secrets.token_hex(4)}"
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(staging, final)
    return final


def read_completion(final: Path) -> Completion | None:
    """The marker of a published folder, or None if absent/unreadable."""
    try:
        data = json.loads((final / MARKER).read_text(encoding="utf-8"))
        return Completion(**data)
    except (OSError, ValueError, TypeError):
        return None


def verify_completed(final: Path, fingerprint: str) -> Completion | None:
    """The marker if ``final`` is a complete output of the same inputs/model, else None.

    Every recorded file must exist with its recorded SHA-256 and no extra file may be present.
    """
    comp = read_completion(final)
    if comp is None or comp.fingerprint != fingerprint:
        return None
    try:
        current = hash_files(final)
    except OSError:
        return None
    if current != comp.files:
        log.warning("%s: files changed since they were written; redoing the series", final)
        return None
    return comp


def discard(staging: Path) -> None:
    """Remove a staging folder after a failure."""
    if STAGING_DIR not in staging.parts:
        raise LdctError("refusing to remove a folder that is not a staging folder", path=staging)
    shutil.rmtree(staging, ignore_errors=True)
