"""Publish a series atomically: write into a staging folder inside OUT, verify, then rename.

Output layout: the DICOM files of a series go to ``OUT/dicom/<rel>/`` (nothing else is ever
written under ``OUT/dicom``, so a DICOM tool can send that tree as it is), its record -- the
completion marker ``.ldct-complete.json`` (input fingerprint, model hash, every file's SHA-256)
and the NIfTI file -- to ``OUT/series/<rel>/``. A staging folder holds both parts
(``dicom/`` and ``series/``); publishing renames the DICOM part into place first and the record
part last, so the marker appearing is the commit: a run killed at any point (``kill -9``) leaves
no half-written folder (each rename is atomic), at most a complete DICOM folder without its
marker, which the next run redoes, and a hidden staging folder that the next run removes. On a
rerun, a series whose marker matches the same input fingerprint and whose files still hash to
the recorded values is skipped.
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
from pipeline.utils.files import atomic_write_text, ensure_inside, pid_alive, sha256_file

log = logging.getLogger(__name__)

MARKER = ".ldct-complete.json"
STAGING_DIR = ".ldct-staging"
#: top-level folder of OUT that holds DICOM files only
DICOM_DIR = "dicom"
#: top-level folder of OUT that holds each series' marker and NIfTI file
RECORD_DIR = "series"


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
        if int(parts[2]) == os.getpid() or pid_alive(int(parts[2])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        log.info("removed %d staging folder(s) of interrupted runs", len(removed))
    return removed


def hash_files(folder: Path, prefix: str = "") -> dict[str, str]:
    """SHA-256 of every regular file below ``folder`` (names relative, marker excluded)."""
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MARKER:
            out[prefix + p.relative_to(folder).as_posix()] = sha256_file(p)
    return out


def _series_files(dicom: Path, record: Path) -> dict[str, str]:
    """Hashes of a series' files: ``dicom/<name>`` for DICOM, ``<name>`` for the record part."""
    return {**hash_files(record), **hash_files(dicom, f"{DICOM_DIR}/")}


def staging_parts(staging: Path) -> tuple[Path, Path]:
    """(DICOM part, record part) of a staging folder."""
    return staging / DICOM_DIR, staging / RECORD_DIR


def _replace(src: Path, final: Path, out_root: Path) -> None:
    """Rename ``src`` to ``final``, moving an earlier ``final`` away first (renames are atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        _replace_with_nothing(final, out_root)
    os.rename(src, final)


def publish(
    staging: Path, dicom_final: Path, record_final: Path, completion: Completion, out_root: Path
) -> Path:
    """Write the marker into the staging record part, rename the DICOM part (if any) to
    ``dicom_final`` and then the record part to ``record_final``; returns ``record_final``."""
    ensure_inside(out_root, dicom_final)
    ensure_inside(out_root, record_final)
    dicom, record = staging_parts(staging)
    record.mkdir(parents=True, exist_ok=True)
    completion.files = _series_files(dicom, record)
    atomic_write_text(record / MARKER, json.dumps(asdict(completion), indent=1))
    if dicom.is_dir():
        _replace(dicom, dicom_final, out_root)
    elif dicom_final.exists():  # an earlier run wrote DICOM; this one does not (format nifti)
        _replace_with_nothing(dicom_final, out_root)
    _replace(record, record_final, out_root)
    shutil.rmtree(staging, ignore_errors=True)  # empty now
    return record_final


def _replace_with_nothing(final: Path, out_root: Path) -> None:
    """Move ``final`` away (one rename) and delete it."""
    trash = out_root / STAGING_DIR / f"replaced-{final.name}.{secrets.token_hex(4)}"
    os.rename(final, trash)
    shutil.rmtree(trash, ignore_errors=True)


def read_completion(record: Path) -> Completion | None:
    """The marker of a published record folder, or None if absent/unreadable."""
    try:
        data = json.loads((record / MARKER).read_text(encoding="utf-8"))
        return Completion(**data)
    except (OSError, ValueError, TypeError):
        return None


def verify_completed(record: Path, dicom: Path, fingerprint: str) -> Completion | None:
    """The marker if the series is a complete output of the same inputs/model, else None.

    Every recorded file (record part and DICOM part) must exist with its recorded SHA-256 and
    no extra file may be present in either folder.
    """
    comp = read_completion(record)
    if comp is None or comp.fingerprint != fingerprint:
        return None
    try:
        current = _series_files(dicom, record)
    except OSError:
        return None
    if current != comp.files:
        log.warning("%s: files changed since they were written; redoing the series", dicom)
        return None
    return comp


def discard(staging: Path) -> None:
    """Remove a staging folder after a failure."""
    if STAGING_DIR not in staging.parts:
        raise LdctError("refusing to remove a folder that is not a staging folder", path=staging)
    shutil.rmtree(staging, ignore_errors=True)
