"""Records handed from one stage to the next: what ``ldct denoise`` did to each series.

The denoise manifest's row (:class:`ManifestRow`) is written by :mod:`pipeline.infer` and read by
:mod:`pipeline.evaluate`; both import it from here, so neither stage re-derives what the other
already knew. How inference covered each slice travels as integers (:class:`TileFields`); the
free-text ``tiling`` column stays for people and is parsed only for manifests written before the
integer fields existed (:func:`tile_fields_of`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from pipeline.utils.text import printable

__all__ = ["ManifestRow", "Status", "TileFields", "tile_fields_of"]


class Status(str, Enum):
    """Outcome of one input series."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class TileFields:
    """How inference covered each slice: whole (``size_px == 0``) or in square tiles.

    ``stride_px`` is the distance between the cores of adjacent tiles and ``overlap_px`` the
    width two neighbouring tiles share (``size_px - stride_px``); ``None`` where a manifest
    written before these fields did not say (its text may give a stride alone).
    """

    size_px: int | None
    stride_px: int | None
    overlap_px: int | None

    @classmethod
    def whole(cls) -> TileFields:
        return cls(0, 0, 0)

    @classmethod
    def tiles(cls, size_px: int, margin_px: int) -> TileFields:
        """Tiles of ``size_px`` whose borders of ``margin_px`` are discarded."""
        return cls(size_px, size_px - 2 * margin_px, 2 * margin_px)

    @property
    def whole_slices(self) -> bool:
        return self.size_px == 0

    def text(self) -> str:
        """The manifest's ``tiling`` text: ``whole slices`` or ``TxT tiles stride=S``.

        >>> TileFields.tiles(256, 16).text()
        '256x256 tiles stride=224'
        """
        if self.whole_slices:
            return "whole slices"
        if self.size_px is None:
            return f"tiles stride={self.stride_px}"
        tiles = f"{self.size_px}x{self.size_px} tiles"
        return tiles if self.stride_px is None else f"{tiles} stride={self.stride_px}"

    def row_fields(self) -> dict[str, int | None]:
        """The manifest columns ``tile_size_px``, ``tile_stride_px``, ``tile_overlap_px``."""
        return {
            "tile_size_px": self.size_px,
            "tile_stride_px": self.stride_px,
            "tile_overlap_px": self.overlap_px,
        }


@dataclass
class ManifestRow:
    """What happened to one input series (paths are absolute; times in seconds)."""

    series_key: str
    input_path: str
    status: str
    reason: str = ""
    output_path: str = ""
    nifti_path: str = ""
    study_uid: str = ""
    source_series_uid: str = ""
    derived_series_uid: str = ""
    series_description: str = ""
    n_slices: int = 0
    rows: int = 0
    columns: int = 0
    n_clipped: int = 0
    read_s: float = 0.0
    infer_s: float = 0.0
    write_s: float = 0.0
    model_name: str = ""
    model_sha256: str = ""
    precision: str = ""
    #: ``whole slices`` or ``TxT tiles stride=S`` (for people; programs read the tile_* fields)
    tiling: str = ""
    #: tile side (px), 0 = whole slices; None = not inferred in this run (skipped, failed)
    tile_size_px: int | None = None
    #: distance between adjacent tile cores (px), 0 for whole slices
    tile_stride_px: int | None = None
    #: width shared by adjacent tiles (px): tile_size_px - tile_stride_px
    tile_overlap_px: int | None = None
    #: suspect-input flags of the source series, "; "-joined (pipeline.io.suspect)
    source_flags: str = ""
    #: the source is (or may be) lossy compressed: its noise statistics are altered
    source_lossy: bool = False
    #: why a person should review this series (outside the model's training envelope, lossy
    #: input, implausible kVp/CTDIvol; pipeline.models.envelope), "; "-joined; empty = none
    review_reasons: str = ""
    #: what could not be checked (no envelope recorded, kVp/CTDIvol absent), "; "-joined
    review_notes: str = ""
    shard: str = ""
    finished_at: float = 0.0
    #: slices absent from an ok series denoised with ``allow_incomplete`` (file: reason; ...)
    missing: str = ""

    def __post_init__(self) -> None:
        # byte-safe: names with invalid UTF-8 or control characters are escaped (\\xNN, \\n),
        # so the CSV/JSON can always be written and read back (pipeline.utils.text)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, str):
                setattr(self, f.name, printable(v))
        if self.status not in {s.value for s in Status}:
            raise ValueError(f"manifest status must be ok|skipped|failed, found {self.status!r}")
        if not self.finished_at:
            self.finished_at = time.time()


# manifests written before the tile_* fields: the tiling text is all there is
_LEGACY_TILE_RE = re.compile(r"(\d+)x\1 tiles", re.IGNORECASE)
_LEGACY_STRIDE_RE = re.compile(r"stride[=:\s]*(\d+)", re.IGNORECASE)


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def tile_fields_of(row: Mapping[str, Any]) -> TileFields | None:
    """How the row's series was covered, or None when the manifest does not say.

    Reads the integer ``tile_*`` fields; a row without them (a manifest written by an earlier
    version) falls back to its ``tiling`` text, ``whole slices`` or ``TxT tiles [stride=S]``.

    >>> tile_fields_of({"tile_size_px": 256, "tile_stride_px": 224, "tile_overlap_px": 32})
    TileFields(size_px=256, stride_px=224, overlap_px=32)
    >>> tile_fields_of({"tiling": "96x96 tiles stride=64"})
    TileFields(size_px=96, stride_px=64, overlap_px=32)
    >>> tile_fields_of({"tiling": "whole slices"}).whole_slices
    True
    """
    if "tile_size_px" in row:
        size = _int_or_none(row.get("tile_size_px"))
        if size is None:
            return None
        if size == 0:
            return TileFields.whole()
        stride = _int_or_none(row.get("tile_stride_px"))
        overlap = _int_or_none(row.get("tile_overlap_px"))
        return TileFields(size, stride, overlap)
    text = str(row.get("tiling") or "").strip()
    if text == "whole slices":
        return TileFields.whole()
    m_tile, m_stride = _LEGACY_TILE_RE.search(text), _LEGACY_STRIDE_RE.search(text)
    if m_tile is None and m_stride is None:
        return None
    size = int(m_tile.group(1)) if m_tile else None
    stride = int(m_stride.group(1)) if m_stride else None
    overlap = size - stride if size is not None and stride is not None else None
    return TileFields(size, stride, overlap)
