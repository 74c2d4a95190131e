"""Progress for long work: a bar on a terminal, log lines everywhere else.

* stderr is a terminal: a tqdm bar (``note()`` prints a line above it);
* stderr is not a terminal (make, nohup, cron, CI): a log line (logger ``ldct.progress``, level
  INFO) with counts, rate and ETA at most every ``LDCT_PROGRESS_EVERY_S`` seconds (default 30),
  plus every ``note()`` (e.g. one line per finished series) and a closing line;
* ``LDCT_NO_PROGRESS`` set: neither (the tests set it); ``LDCT_PROGRESS=1`` forces the bar.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

log = logging.getLogger("ldct.progress")


def progress_enabled() -> bool:
    """Whether to show bars: stderr is a TTY and LDCT_NO_PROGRESS unset (LDCT_PROGRESS=1 forces)."""
    if os.environ.get("LDCT_PROGRESS") == "1":
        return True
    if os.environ.get("LDCT_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def progress_lines_enabled() -> bool:
    """Whether to log progress lines instead (no bar, LDCT_NO_PROGRESS unset)."""
    return not progress_enabled() and not os.environ.get("LDCT_NO_PROGRESS")


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1m15s"``, ``4000`` -> ``"1h06m"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class LineProgress:
    """The tqdm subset the pipeline uses, written as log lines (for logs, not terminals)."""

    def __init__(
        self,
        iterable: Iterable[Any] | None,
        *,
        desc: str,
        total: int | None,
        unit: str,
        every_s: float | None = None,
        enabled: bool = True,
        clock: Any = time.monotonic,
    ) -> None:
        self.iterable = iterable
        self.desc, self.total, self.unit = desc, total, unit
        self.n = 0
        self.every_s = (
            float(os.environ.get("LDCT_PROGRESS_EVERY_S", "30")) if every_s is None else every_s
        )
        self.enabled = enabled
        self._clock = clock
        self._t0 = self._last = clock()
        self._n0 = 0  # counted before this process started (a resumed run): not in the rate
        self._postfix = ""
        self._spoke = False  # a line was logged: the closing line is then worth logging too

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)

    def status(self) -> str:
        """``desc: n/total unit (p %), r unit/s, ETA t`` (what every line says)."""
        elapsed = max(self._clock() - self._t0, 1e-9)
        done_here = self.n - self._n0
        rate = done_here / elapsed
        text = f"{self.desc}: {self.n}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100.0 * self.n / self.total:.0f} %)"
        else:
            text += f" {self.unit}"
        text += f", {rate:.3g} {self.unit}/s"
        if self.total and rate > 0 and self.n < self.total:
            text += f", ETA {format_duration((self.total - self.n) / rate)}"
        text += f", elapsed {format_duration(elapsed)}"
        return text + (f" | {self._postfix}" if self._postfix else "")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if self.enabled and now - self._last >= self.every_s:
            self._last, self._spoke = now, True
            log.info("%s", self.status())

    def skip_ahead(self, n: int) -> None:
        """Count ``n`` done before this run started (resume) without counting it in the rate."""
        self.n += n
        self._n0 += n

    def set_postfix(
        self, ordered_dict: Mapping[str, object] | None = None, refresh: bool = True, **kw: object
    ) -> None:
        items = {**(ordered_dict or {}), **kw}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def note(self, message: str) -> None:
        """An event worth its own line (e.g. a finished series), with the running status."""
        if self.enabled:
            self._spoke = True
            log.info("%s [%s]", message, self.status())

    def close(self) -> None:
        """A closing line with the totals, unless the work was short and said nothing before."""
        elapsed = self._clock() - self._t0
        if self.enabled and self.n > self._n0 and (self._spoke or elapsed >= self.every_s):
            here = self.n - self._n0
            rate = here / max(elapsed, 1e-9)
            before = f" ({self._n0} before this run)" if self._n0 else ""
            log.info(
                "%s: done, %d %s%s, %d in %s (%.3g %s/s)",
                self.desc,
                self.n,
                self.unit,
                before,
                here,
                format_duration(elapsed),
                rate,
                self.unit,
            )
        self.enabled = False


class _Bar(tqdm):
    """tqdm with ``note`` (a line above the bar) and ``skip_ahead`` (resume offset)."""

    def note(self, message: str) -> None:
        if not self.disable:
            self.write(message, file=sys.stderr)

    def skip_ahead(self, n: int) -> None:
        self.update(n)


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
) -> Any:
    """A bar on a terminal, else log lines (see the module doc); iterate it or ``update(n)``,
    ``set_postfix(...)``, ``note(text)``, ``skip_ahead(n)``; ``close()`` it."""
    if progress_lines_enabled():
        return LineProgress(iterable, desc=desc, total=total, unit=unit)
    return _Bar(
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
    """Wrap ``iterable`` in a progress bar (or progress log lines) when enabled."""
    bar = progress_bar(iterable, desc=desc, total=total, unit=unit)
    try:
        yield from bar
    finally:
        bar.close()
