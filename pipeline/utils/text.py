"""Text that is safe to print, log and write as UTF-8, whatever bytes a name or tag held.

File names on POSIX are bytes: Python decodes the invalid UTF-8 ones with ``surrogateescape``
(lone surrogates U+DC80..U+DCFF), which cannot be encoded as UTF-8, and names and DICOM tags
may hold newlines, escape sequences or NUL. :func:`printable` replaces each such character by a
visible escape (``\\xNN`` for an undecodable byte or a control character, ``\\n``, ``\\r``,
``\\t``), so a manifest, a report or a terminal line can never break or be spoofed. The escape
is for humans: it is not reversible (a literal backslash is kept as is).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls, DEL, C1 controls, lone surrogates (undecodable bytes / broken UTF-16)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    if code > 0xFF:  # other lone surrogates
        return f"\\u{code:04x}"
    return _NAMED.get(char, f"\\x{code:02x}")


def printable(text: object) -> str:
    """``str(text)`` with undecodable bytes and control characters escaped (see module doc).

    >>> name = bytes([73, 77, 255]).decode(errors="surrogateescape")  # a non-UTF-8 file name
    >>> print(printable(name), printable("a" + chr(10) + "b"))
    IM\\xff a\\nb
    """
    s = str(text)
    return _UNSAFE.sub(_escape, s) if _UNSAFE.search(s) else s
