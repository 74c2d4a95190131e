"""Progress bars for long work (stderr, off when not a terminal or LDCT_NO_PROGRESS is set)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Whether to show bars: stderr is a TTY and LDCT_NO_PROGRESS unset (LDCT_PROGRESS=1 forces)."""
    if os.environ.get("LDCT_PROGRESS") == "1":
        return True
    if os.environ.get("LDCT_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
) -> tqdm:
    """A bar on stderr (iterate it, or ``bar.update(n)`` / ``bar.set_postfix(...)``; close it)."""
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        disable=not progress_enabled(),
        dynamic_ncols=True,
        leave=False,
        file=sys.stderr,
    )


def progress(
    iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar on stderr when enabled."""
    yield from progress_bar(iterable, desc=desc, total=total, unit=unit)
