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
_H = struct.Struct("<H")
_I = struct.Struct("<I")
_CHARSET = BaseTag(0x00080005)


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
    ts_elem = meta.get(BaseTag(0x00020010))
    if ts_elem is None or not ts_elem.value:
        raise Unusual("no transfer syntax")
    syntax = ts_elem.value.decode("latin-1").strip(" \x00")
    implicit = _implicit(syntax)
    elems: dict[BaseTag, RawDataElement] = {}
    _elements(buf, pos, implicit, elems, complete, meta_only=False)
    ds = Dataset(elems)
    encoding: str | list[str] = "iso8859"
    if _CHARSET in elems:
        charset = convert_raw_data_element(elems[_CHARSET]).value
        encoding = convert_encodings(charset)
    ds.set_original_encoding(implicit, True, encoding)
    file_meta = FileMetaDataset()
    file_meta._dict.update(meta)
    ds.file_meta = file_meta
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
    """Walk elements from ``pos``; stops at the end of the file meta or at pixel data."""
    end = len(buf)
    last = -1
    while True:
        if pos + 8 > end:
            if complete and pos == end and not meta_only:
                return pos  # a file without pixel data ends here
            raise _NeedMore if not complete else Unusual("truncated element")
        group, elem = _HH.unpack_from(buf, pos)
        if meta_only and group != 2:
            return pos
        tag = (group << 16) | elem
        if tag <= last or group == 0xFFFE:
            raise Unusual("tags out of order")
        last = tag
        if implicit:
            vr = None
            length = _I.unpack_from(buf, pos + 4)[0]
            start = pos + 8
        else:
            vr = buf[pos + 4 : pos + 6].decode("latin-1")
            if vr in _LONG:
                if pos + 12 > end:
                    raise _NeedMore if not complete else Unusual("truncated element")
                length = _I.unpack_from(buf, pos + 8)[0]
                start = pos + 12
            elif vr in _SHORT:
                length = _H.unpack_from(buf, pos + 6)[0]
                start = pos + 8
            else:
                raise Unusual(f"VR {vr!r}")
        btag = BaseTag(tag)
        if group == _PIXEL_GROUP:  # pixel data: record its place, do not read it
            if tag != _PIXEL_DATA:  # float pixel data, group length...: leave it to pydicom
                raise Unusual("unusual pixel data group")
            out[btag] = RawDataElement(btag, vr, length, None, start, implicit, True)
            return start
        if length == _UNDEFINED:
            if (vr or _dict_vr(tag)) != "SQ":
                raise Unusual("undefined length outside a sequence")
            stop = _skip_items(buf, start, implicit, complete)
            value = buf[start:stop]
            pos = stop + 8  # the sequence delimiter
        else:
            stop = start + length
            if stop > end:
                raise _NeedMore if not complete else Unusual("truncated element")
            value = buf[start:stop]
            pos = stop
        out[btag] = RawDataElement(btag, vr, length, value, start, implicit, True)


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
