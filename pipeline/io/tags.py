"""Fast, quiet access to header values during scanning.

pydicom converts raw elements lazily through a general (and, per element, slow) machinery and
warns about every non-conformant value it meets. Scanning thousands of files touches ~25 tags
each, so :func:`value` parses the common VRs (US/SS/UL/SL/FL/FD, IS/DS, UI/CS/SH/AS/DA/TM)
straight from the raw bytes and falls back to pydicom for anything else; :func:`quiet`
silences pydicom's log and warnings while we read (non-conformant values are reported by us
where they matter).
"""

from __future__ import annotations

import contextlib
import logging
import struct
import warnings
from collections.abc import Iterator
from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.valuerep import VR

_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_ONE = {
    (vr, little): struct.Struct(("<" if little else ">") + fmt)
    for vr, fmt in _BINARY.items()
    for little in (True, False)
}
_ASCII = {"UI", "CS", "SH", "AS", "DA", "TM", "DT"}
_TEXT = frozenset(_ASCII | {"IS", "DS"})


_QUIET_DEPTH = 0


def is_quiet() -> bool:
    """True inside a :func:`quiet` block."""
    return _QUIET_DEPTH > 0


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mute pydicom's logger and Python warnings inside the block (cheap when nested)."""
    global _QUIET_DEPTH
    if _QUIET_DEPTH > 0:  # an outer block (e.g. the whole scan) already muted everything
        yield
        return
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    _QUIET_DEPTH += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        _QUIET_DEPTH -= 1
        logger.setLevel(level)


#: one BaseTag object per tag number: dict look-ups between the same objects are identity
#: hits, while an int (or another BaseTag) key costs a Python-level ``BaseTag.__eq__`` call
TAG_OBJECTS: dict[int, BaseTag] = {}
_MAXTAG_OBJECTS = 100_000


def interned_tag(tag: int) -> BaseTag:
    """The shared BaseTag for ``tag`` (use it as Dataset key: faster look-ups by :func:`value`)."""
    found = TAG_OBJECTS.get(tag)
    if found is None:
        found = BaseTag(tag)
        if len(TAG_OBJECTS) < _MAXTAG_OBJECTS:  # private tags vary; keep the table bounded
            TAG_OBJECTS[tag] = found
    return found


@cache
def _tag(keyword: str) -> BaseTag:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword}")
    return interned_tag(tag)


@cache
def _vr(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _text_value(text: str, vr: str) -> Any:
    """A text element's value: numbers for IS/DS, single values unwrapped; None when empty."""
    if not text:
        return None
    if "\\" not in text:  # one value: the common case, no list round trip
        return int(float(text)) if vr == "IS" else float(text) if vr == "DS" else text
    parts = [p.strip(" \x00") for p in text.split("\\")]
    if vr == "IS":
        nums: list[Any] = [int(float(p)) for p in parts]
    elif vr == "DS":
        nums = [float(p) for p in parts]
    else:
        return parts[0] if len(parts) == 1 else parts
    return nums[0] if len(nums) == 1 else nums


def value(ds: Dataset, keyword: str) -> Any:
    """The value of ``keyword`` (None if absent, empty or unparseable); single values unwrapped."""
    tag = _tag(keyword)
    elem = ds._dict.get(tag)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement) and elem.value is not None:
        vr = elem.VR or _vr(tag)
        raw = elem.value
        if vr in _BINARY:
            one = _ONE[vr, elem.is_little_endian]
            n = len(raw) // one.size
            if n == 0:
                return None
            if n == 1:
                return one.unpack_from(raw)[0]
            order = "<" if elem.is_little_endian else ">"
            return list(struct.unpack_from(f"{order}{n}{_BINARY[vr]}", raw))
        if vr in _TEXT:
            try:
                return _text_value(raw.decode("latin-1").strip(" \x00"), vr)
            except ValueError:  # a number string that is not one (damaged file): unparseable
                return None
    with quiet():
        try:
            out = ds.get(keyword)
        except Exception:  # corrupt element (unknown VR, bad length...): treat as absent
            return None
    if out is None or out == "":
        return None
    return out


KNOWN_VRS = frozenset(v.value for v in VR)


def first_bad_vr(ds: Dataset) -> str | None:
    """Description of the first top-level element with an unknown VR, or None (cheap check)."""
    for elem in ds._dict.values():
        vr = getattr(elem, "VR", None)
        if isinstance(elem, RawDataElement) and vr is not None and vr not in KNOWN_VRS:
            return f"unknown VR {vr!r} in tag {elem.tag}"
    return None
