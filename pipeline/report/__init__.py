"""The QA report (``ldct report``): one self-contained HTML page per patient and an index.

Module map:

* ``render`` -- :func:`build_report`; ``tables`` -- reading an ``ldct evaluate`` folder;
  ``context`` -- one page's numbers; ``figures``, ``images`` -- plots and image panels;
  ``templates/`` -- the Jinja pages.
* ``config`` -- verdict rules and panels (:class:`ReportConfig`); ``verdict`` -- pass /
  review / fail from the rules; ``pseudonym`` -- keyed pseudonyms; ``browser`` -- headless
  Chromium for PDFs.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.report.config import ReportConfig, Rule, default_rules
    from pipeline.report.render import ReportResult, build_report
    from pipeline.report.tables import load_eval
    from pipeline.report.verdict import judge

_EXPORTS: dict[str, tuple[str, ...]] = {
    "render": ("ReportResult", "build_report"),
    "tables": ("load_eval",),
    "config": ("ReportConfig", "Rule", "default_rules"),
    "verdict": ("judge",),
}

__all__ = [
    "ReportConfig",
    "ReportResult",
    "Rule",
    "build_report",
    "default_rules",
    "judge",
    "load_eval",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
