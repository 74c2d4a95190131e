"""Inputs to treat with care: lossy-compressed sources and missing or invalid Type 1 attributes.

A lossy-compressed source (LossyImageCompression "01", or a transfer syntax that is lossy by
definition) has altered noise statistics: denoising it works, but noise measurements on it (and
on what is derived from it) do not describe the scanner. A missing Type 1 attribute (e.g.
FrameOfReferenceUID in pydicom's ``693_J2KI.dcm``) makes the source -- and a derived series that
copies it -- non-conformant; an invalid UID cannot be referenced. Each flag is one sentence;
``ldct inspect`` lists them and ``ldct denoise`` writes them into the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset

from pipeline.io.dicom_encode import is_valid_uid
from pipeline.io.header import PER_FRAME_TAG, FileHeader
from pipeline.io.tags import value

#: transfer syntaxes that are lossy by definition
LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
}
#: transfer syntaxes that may hold lossy or lossless data (LossyImageCompression tells)
MAYBE_LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.93": "JPEG 2000 Part 2",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
}
#: Type 1 attributes of the CT Image IOD that every classic or Enhanced CT instance needs here
TYPE1 = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "FrameOfReferenceUID",
    "ImageType",
)
#: classic CT only (Enhanced CT keeps them in functional groups)
TYPE1_CLASSIC = ("RescaleIntercept", "RescaleSlope")
_UIDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
LOSSY_PREFIX = "lossy compressed source"


def _text(ds: Dataset, keyword: str) -> str:
    found = value(ds, keyword)
    if found is None:
        return ""
    if isinstance(found, (list, tuple)) or type(found).__name__ == "MultiValue":
        return "\\".join(str(v) for v in found)
    return str(found).strip()


def lossy_flag(ds: Dataset, transfer_syntax: str) -> str | None:
    """A sentence if this instance is (or may be) lossy compressed, else None."""
    stated = _text(ds, "LossyImageCompression")
    if stated == "01":
        ratio = _text(ds, "LossyImageCompressionRatio")
        method = _text(ds, "LossyImageCompressionMethod")
        parts = ["LossyImageCompression 01"]
        if ratio:
            try:
                parts.append("ratio " + "\\".join(f"{float(r):.4g}:1" for r in ratio.split("\\")))
            except ValueError:
                parts.append(f"ratio {ratio!r}")
        if method:
            parts.append(f"method {method}")
        return f"{LOSSY_PREFIX} ({', '.join(parts)}): noise statistics altered"
    if transfer_syntax in LOSSY_SYNTAXES:
        name = LOSSY_SYNTAXES[transfer_syntax]
        return f"{LOSSY_PREFIX} (transfer syntax {name}): noise statistics altered"
    if transfer_syntax in MAYBE_LOSSY_SYNTAXES and stated != "00":
        name = MAYBE_LOSSY_SYNTAXES[transfer_syntax]
        return f"{LOSSY_PREFIX}? (transfer syntax {name}, LossyImageCompression not stated)"
    return None


def instance_flags(ds: Dataset, transfer_syntax: str, enhanced: bool = False) -> list[str]:
    """Every flag of one instance (header without pixels)."""
    flags: list[str] = []
    lossy = lossy_flag(ds, transfer_syntax)
    if lossy:
        flags.append(lossy)
    required = TYPE1 if enhanced else TYPE1 + TYPE1_CLASSIC
    missing = [kw for kw in required if not _text(ds, kw)]
    if missing:
        flags.append(f"missing Type 1 attribute(s): {', '.join(missing)}")
    invalid = [kw for kw in _UIDS if _text(ds, kw) and not is_valid_uid(_text(ds, kw))]
    if invalid:
        flags.append(f"invalid UID(s) in {', '.join(invalid)}")
    return flags


def series_flags(instances: Iterable[tuple[Dataset, str, bool]]) -> list[str]:
    """Flags of a series: the union over its instances (header, transfer syntax, enhanced)."""
    out: dict[str, None] = {}
    for ds, syntax, enhanced in instances:
        for flag in instance_flags(ds, syntax, enhanced):
            out.setdefault(flag, None)
    return list(out)


def is_lossy(flags: Iterable[str]) -> bool:
    """True if one of ``flags`` says the source is (or may be) lossy compressed."""
    return any(f.startswith(LOSSY_PREFIX) for f in flags)


def record_flags(files: Iterable[FileHeader]) -> list[str]:
    """Flags of a discovered series from its files' headers (no pixel data needed)."""
    return series_flags(
        (fh.header, fh.transfer_syntax, PER_FRAME_TAG in fh.header._dict) for fh in files
    )
