"""What a low/full-dose pair *is* before it is read: :class:`PairSpec` (plain data).

Its own module so that the layouts and manifests that produce specs and :mod:`pipeline.data.pairs`
that validates them import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PairSpec:
    """Where one low/full-dose pair lives (not yet read)."""

    patient: str
    low: Path
    full: Path
    #: dose fraction of the low-dose series relative to the full dose (0.25 = quarter), if known
    dose: float | None = None
    #: which layout found it ("demo", "mayo", "tcia", "manifest", "memory")
    layout: str = "manifest"
    #: distinguishes several pairs of one patient (e.g. "3mm" and "1mm" for Mayo data)
    tag: str = ""

    @property
    def name(self) -> str:
        """Display/identity name: ``patient`` or ``patient/tag``."""
        return f"{self.patient}/{self.tag}" if self.tag else self.patient
