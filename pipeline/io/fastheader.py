"""Fast header-only parse of well-formed DICOM files into a pydicom Dataset of raw elements.

``pydicom.dcmread`` spends most of a header scan in its general element generator, in eager
parsing of undefined-length sequences and in building a ``FileDataset``. The common file
layout (128-byte preamble, ``DICM``, explicit-VR file meta, then a little-endian data set in
implicit or explicit VR) is walked here with ``struct`` over one ``read()`` of the first
bytes of the file: every element before the pixel data becomes a ``RawDataElement`` (values
are converted lazily by pydicom, sequences included), the pixel data element is recorded with
its length and byte offset but not read.

Anything unusual (no preamble, big endian, deflate, unknown VR bytes, tags out of order,
undefined lengths outside sequences and pixel data, ...) raises :class:`Unusual` and the
caller falls back to ``pydicom.dcmread``, which has the heuristics and the error messages.
"""

from __future__ import annotations

import struct
from functools import cache
from typing import BinaryIO

from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from pipeline.io.tags import TAG_OBJECTS, interned_tag

#: bytes read first; files whose header is longer are read again with more
FIRST_READ = 16384
_UNDEFINED = 0xFFFFFFFF
_PIXEL_GROUP = 0x7FE0
_PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQ_END = 0xE000, 0xE00D, 0xE0DD
_LONG = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_SHORT = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL",
     "SS", "ST", "TM", "UI", "UL", "US"}
)  # fmt: skip
_HH = struct.Struct("<HH")
_IMPLICIT = struct.Struct("<HHI0s")  # group, element, length, (nothing)
_EXPLICIT = struct.Struct("<HH2sH")  # group, element, VR, short length
#: VR bytes -> (VR, has a 4-byte length); anything else is not a VR we walk
_VRS = {v.encode(): (v, True) for v in _LONG} | {v.encode(): (v, False) for v in _SHORT}
_BAD_VR = (None, False)
_raw = tuple.__new__  # RawDataElement without its Python-level __new__
_H = struct.Struct("<H")
_I = struct.Struct("<I")
_CHARSET = interned_tag(0x00080005)
_SYNTAX = interned_tag(0x00020010)


class Unusual(Exception):
    """The file is not in the common layout; parse it with pydicom instead."""


class _NeedMore(Exception):
    """The header continues past the bytes read so far."""


@cache
def _implicit(syntax: str) -> bool:
    """True for Implicit VR LE, False for the explicit-VR LE syntaxes we walk, else Unusual."""
    if syntax == "1.2.840.10008.1.2":
        return True
    uid = UID(syntax)
    deflated = syntax == "1.2.840.10008.1.2.1.99"
    if not uid.is_transfer_syntax or not uid.is_little_endian or uid.is_implicit_VR or deflated:
        raise Unusual(syntax)
    return False


@cache
def _dict_vr(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def read_fast(fp: BinaryIO, size: int) -> Dataset:
    """Header of the open file ``fp`` (``size`` bytes, read from its start) or :class:`Unusual`.

    The dataset has ``file_meta`` and, when present, the pixel data element as a
    ``RawDataElement`` whose value is None (``length`` and ``value_tell`` are exact).
    """
    buf = fp.read(min(size, FIRST_READ))
    while True:
        try:
            return _parse(buf, len(buf) >= size)
        except _NeedMore:
            more = fp.read(min(size, 4 * len(buf)) - len(buf))
            if not more:
                raise Unusual("file shorter than its size") from None
            buf += more
        except Unusual:
            raise
        except Exception as exc:  # anything odd in the bytes: pydicom decides
            raise Unusual(f"{type(exc).__name__}: {exc}") from None


def _parse(buf: bytes, complete: bool) -> Dataset:
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise Unusual("no preamble")
    meta: dict[BaseTag, RawDataElement] = {}
    pos = _elements(buf, 132, False, meta, complete, meta_only=True)
    ts_elem = meta.get(_SYNTAX)
    if ts_elem is None or not ts_elem.value:
        raise Unusual("no transfer syntax")
    syntax = ts_elem.value.decode("latin-1").strip(" \x00")
    implicit = _implicit(syntax)
    if implicit and buf[pos + 4 : pos + 6] in _VRS:
        raise Unusual("implicit VR declared, explicit VR found")  # pydicom's own heuristic
    elems: dict[BaseTag, RawDataElement] = {}
    _elements(buf, pos, implicit, elems, complete, meta_only=False)
    ds = _fresh(Dataset, elems)
    ds.set_original_encoding(implicit, True, "iso8859")
    if _CHARSET in elems:
        charset = convert_raw_data_element(elems[_CHARSET]).value
        ds.set_original_encoding(implicit, True, convert_encodings(charset))
    ds.__dict__["file_meta"] = _fresh(FileMetaDataset, meta)  # what ds.file_meta = ... stores
    return ds


#: attribute sets of empty datasets, cloned for every file (``Dataset.__init__`` goes through
#: pydicom's ``__setattr__`` for each of ~15 attributes, a sizeable part of a header's cost)
_BLANK = {cls: vars(cls()) for cls in (Dataset, FileMetaDataset)}


def _fresh(cls: type[Dataset], elems: dict[BaseTag, RawDataElement]) -> Dataset:
    """A ``cls`` holding ``elems``, as ``cls(elems)`` would build it (mutable state copied)."""
    ds = cls.__new__(cls)
    state = {k: v.copy() if isinstance(v, (dict, list)) else v for k, v in _BLANK[cls].items()}
    state["_dict"] = elems
    ds.__dict__.update(state)
    return ds


def _elements(
    buf: bytes,
    pos: int,
    implicit: bool,
    out: dict[BaseTag, RawDataElement],
    complete: bool,
    *,
    meta_only: bool,
) -> int:
    """Walk elements from ``pos``; stops at the end of the file meta or at pixel data.

    This loop runs for every element of every scanned file, hence the one ``unpack_from``
    per header, the interned tag objects and the direct tuple construction.
    """
    end = len(buf)
    last = -1
    header = _IMPLICIT if implicit else _EXPLICIT
    while True:
        if pos + 8 > end:
            if complete and pos == end and not meta_only:
                return pos  # a file without pixel data ends here
            raise _NeedMore if not complete else Unusual("truncated element")
        group, elem, vr_or_len, length = header.unpack_from(buf, pos)
        if meta_only and group != 2:
            return pos
        tag = (group << 16) | elem
        if tag <= last or group == 0xFFFE:
            raise Unusual("tags out of order")
        last = tag
        if implicit:
            vr = None
            length = vr_or_len
            start = pos + 8
        else:
            vr, long = _VRS.get(vr_or_len, _BAD_VR)
            if long:
                if pos + 12 > end:
                    raise _NeedMore if not complete else Unusual("truncated element")
                length = _I.unpack_from(buf, pos + 8)[0]
                start = pos + 12
            elif vr is None:
                raise Unusual(f"VR {vr_or_len!r}")
            else:
                start = pos + 8
        btag = TAG_OBJECTS.get(tag) or interned_tag(tag)
        if group == _PIXEL_GROUP:  # pixel data: record its place, do not read it
            if tag != _PIXEL_DATA:  # float pixel data, group length...: leave it to pydicom
                raise Unusual("unusual pixel data group")
            out[btag] = _raw(
                RawDataElement, (btag, vr, length, None, start, implicit, True, True, False)
            )
            return start
        if length == _UNDEFINED:
            if (vr or _dict_vr(tag)) != "SQ":
                raise Unusual("undefined length outside a sequence")
            stop = _skip_items(buf, start, implicit, complete)
            pos = stop + 8  # the sequence delimiter
        else:
            stop = pos = start + length
            if stop > end:
                raise _NeedMore if not complete else Unusual("truncated element")
        out[btag] = _raw(
            RawDataElement, (btag, vr, length, buf[start:stop], start, implicit, True, True, False)
        )


def _skip_items(buf: bytes, pos: int, implicit: bool, complete: bool) -> int:
    """Position of the delimiter that ends the undefined-length sequence starting at ``pos``."""
    end = len(buf)
    while True:
        if pos + 8 > end:
            raise _NeedMore if not complete else Unusual("truncated sequence")
        group, elem = _HH.unpack_from(buf, pos)
        length = _I.unpack_from(buf, pos + 4)[0]
        if group != 0xFFFE:
            raise Unusual("no item tag in sequence")
        if elem == _SEQ_END:
            return pos
        if elem != _ITEM:
            raise Unusual("unexpected delimiter in sequence")
        pos += 8
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _skip_item_elements(buf, pos, implicit, complete)


def _skip_item_elements(buf: bytes, pos: int, implicit: bool, complete: bool) -> int:
    """Position just after the item delimiter of an undefined-length item."""
    end = len(buf)
    while True:
        if pos + 8 > end:
            raise _NeedMore if not complete else Unusual("truncated item")
        group, elem = _HH.unpack_from(buf, pos)
        if group == 0xFFFE:
            if elem != _ITEM_END:
                raise Unusual("unexpected delimiter in item")
            return pos + 8
        if implicit:
            vr = None
            length = _I.unpack_from(buf, pos + 4)[0]
            pos += 8
        else:
            vr = buf[pos + 4 : pos + 6].decode("latin-1")
            if vr in _LONG:
                if pos + 12 > end:
                    raise _NeedMore if not complete else Unusual("truncated item")
                length = _I.unpack_from(buf, pos + 8)[0]
                pos += 12
            elif vr in _SHORT:
                length = _H.unpack_from(buf, pos + 6)[0]
                pos += 8
            else:
                raise Unusual(f"VR {vr!r} in item")
        if length == _UNDEFINED:
            if (vr or _dict_vr((group << 16) | elem)) != "SQ":
                raise Unusual("undefined length in item")
            pos = _skip_items(buf, pos, implicit, complete) + 8
        else:
            pos += length
