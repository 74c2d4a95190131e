"""What produced a checkpoint: code version (package + git commit) and data hashes."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import pipeline


def git_commit(repo_dir: str | Path | None = None) -> str | None:
    """The source tree's git commit (with ``+dirty`` when modified), or None outside git."""
    where = Path(repo_dir) if repo_dir else Path(pipeline.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "pipeline"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def code_version() -> dict[str, Any]:
    """Package version, git commit, torch version and host, for checkpoint metadata."""
    return {
        "package": "ldct-pipeline",
        "version": pipeline.__version__,
        "git_commit": git_commit(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }


def hash_records(records: Any) -> str:
    """SHA-256 of JSON-serialisable data (e.g. the list of training pairs when no file exists)."""
    blob = json.dumps(records, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()
