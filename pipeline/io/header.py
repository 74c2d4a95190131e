"""Header-only parsing of one DICOM file: is it a usable CT image, and where are its planes?

No pixel data is decoded here. Each file either becomes a :class:`FileHeader` (with one
:class:`FrameRef` per image plane: one for classic CT, one per frame for Enhanced CT) or a
:class:`SkippedFile` whose ``reason`` says, in words, why it is not used.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

from pipeline.io.hu import Rescale, padding_spec, rescale_for_frame
from pipeline.io.sop import classify_sop, is_localizer
from pipeline.io.tags import first_bad_vr, is_quiet, quiet, value

log = logging.getLogger(__name__)

PIXEL_DATA_TAG = BaseTag(0x7FE00010)
PER_FRAME_TAG = BaseTag(0x52009230)
_OTHER_PIXEL_TAGS = (BaseTag(0x7FE00008), BaseTag(0x7FE00009))  # Float / Double Float Pixel Data
UNDEFINED_LENGTH = 0xFFFFFFFF
#: transfer syntaxes whose pixel data we can read straight from the file (no decoder)
NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": "<",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1": "<",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.2": ">",  # Explicit VR Big Endian (retired)
}
DEFLATED = "1.2.840.10008.1.2.1.99"
_ORTHO_TOL = 1e-3
#: larger decoded pixel data in one file is refused (hostile or corrupt Rows/Columns/frames)
MAX_PIXEL_BYTES = 2 * 2**30
#: CT plausibility: larger Rows or Columns are refused before any decoding (decompression
#: bombs such as 8192 x 8192 RLE files); ``LDCT_MAX_MATRIX`` raises the limit
MAX_MATRIX = int(os.environ.get("LDCT_MAX_MATRIX", "4096"))


@dataclass(frozen=True)
class SkippedFile:
    """A file that is not part of any CT series, and why (one readable sentence).

    ``lost`` is True when the file may be a slice that a series lost (unreadable, damaged or
    invalid header), False when it is deliberately not used (not DICOM, not CT, a scout, a
    dose report, an identical duplicate). ``study_uid``/``series_uid`` are the file's own
    UIDs when its header could be read that far, so the scan can account for it.
    """

    path: Path
    reason: str
    lost: bool = False
    study_uid: str = ""
    series_uid: str = ""


@dataclass(frozen=True)
class FrameRef:
    """One image plane of a CT file: geometry and rescale read from the header."""

    path: Path
    frame: int | None  # 0-based frame index for multi-frame files, else None
    sop_instance_uid: str
    position_mm: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]  # row cosine, column cosine
    pixel_spacing_mm: tuple[float, float]  # (between rows = y, between columns = x)
    rescale: Rescale
    header: Dataset = field(repr=False, compare=False)


@dataclass
class FileHeader:
    """A CT image file that passed header validation."""

    path: Path
    header: Dataset  # without pixel data
    transfer_syntax: str
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    number_of_frames: int
    #: byte offset and length of native (uncompressed) pixel data, None when encapsulated
    pixel_offset: int | None
    pixel_length: int | None
    frames: list[FrameRef]
    warnings: list[str] = field(default_factory=list)
    study_uid: str = ""
    series_uid: str = ""

    @property
    def byte_order(self) -> str | None:
        """'<' or '>' when pixels can be read natively from the file, else None."""
        return NATIVE_SYNTAXES.get(self.transfer_syntax) if self.pixel_offset is not None else None


def read_header(path: Path) -> FileHeader | SkippedFile:
    """Parse ``path`` without decoding pixels; never raises for bad data (returns a skip)."""
    if is_quiet():  # inside a scan: already muted once for all files
        return _read_header(path)
    with quiet():  # pydicom's VR/charset complaints are not our output
        return _read_header(path)


def _read_header(path: Path) -> FileHeader | SkippedFile:
    try:
        ds, size = _open(path)
    except _Skip as skip:
        return SkippedFile(path, str(skip), lost=skip.lost)
    try:
        return _validate(path, ds, size)
    except _Skip as skip:
        return SkippedFile(path, str(skip), skip.lost, *_uids(ds))
    except Exception as exc:  # malformed values deep inside the header
        log.debug("header validation failed for %s", path, exc_info=True)
        reason = f"malformed DICOM header ({type(exc).__name__}: {exc})"
        return SkippedFile(path, reason, True, *_uids(ds))


def _uids(ds: Dataset) -> tuple[str, str]:
    """(StudyInstanceUID, SeriesInstanceUID) of a header that failed validation, or ""."""
    out = []
    for name in ("StudyInstanceUID", "SeriesInstanceUID"):
        try:
            out.append(str(value(ds, name) or "").strip())
        except Exception:  # a malformed element: the file stays unattributed
            out.append("")
    return out[0], out[1]


class _Skip(Exception):
    """Internal: the file is not usable; the message is the skip reason.

    ``lost=True`` (the default): the file may be a slice its series needed (damaged,
    unreadable, invalid); ``lost=False``: deliberately not used (not DICOM, not CT, ...).
    """

    def __init__(self, reason: str, *, lost: bool = True) -> None:
        super().__init__(reason)
        self.lost = lost


def _open(path: Path) -> tuple[Dataset, int]:
    """(header, file size): pydicom's parse, pixel data deferred (its offset is recorded)."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise _Skip(f"cannot access file ({exc.strerror or exc})") from None
    if size == 0:
        raise _Skip("empty file (0 bytes)")
    try:
        with open(path, "rb") as fp:
            try:
                return pydicom.dcmread(fp, defer_size=1024), size
            except InvalidDicomError:
                fp.seek(0)
                ds = pydicom.dcmread(fp, defer_size=1024, force=True)
                # force=True accepts almost anything; keep it only if it looks like an image
                if "SOPClassUID" not in ds and "Rows" not in ds:
                    raise _Skip(
                        "not a DICOM file (no 'DICM' marker and no recognisable image header)",
                        lost=False,
                    ) from None
                return ds, size
    except _Skip:
        raise
    except PermissionError:
        raise _Skip("cannot read file: permission denied") from None
    except IsADirectoryError:
        raise _Skip("is a directory", lost=False) from None
    except OSError as exc:
        raise _Skip(f"cannot read file ({exc.strerror or exc})") from None
    except Exception as exc:  # pydicom raises many kinds on garbage
        raise _Skip(f"unreadable DICOM header ({type(exc).__name__}: {exc})") from None


def _tag(ds: Dataset, name: str) -> Any:
    found = value(ds, name)
    if found is None:
        raise _Skip(f"missing required tag {name}")
    return found


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = value(meta, "TransferSyntaxUID") if meta is not None else None
    if uid:
        return str(uid)
    # no meta header: pydicom guessed the encoding while reading
    return "1.2.840.10008.1.2" if ds.is_implicit_VR else "1.2.840.10008.1.2.1"


def _validate(path: Path, ds: Dataset, size: int) -> FileHeader:
    bad = first_bad_vr(ds)
    if bad is not None:
        raise _Skip(f"malformed DICOM header ({bad})")
    kind = classify_sop(ds)
    if kind is not None:
        raise _Skip(kind, lost=False)
    modality = str(value(ds, "Modality") or "").strip().upper()
    sop = str(value(ds, "SOPClassUID") or "")
    if not modality and not sop:
        raise _Skip("incomplete DICOM header: no Modality and no SOPClassUID (truncated file?)")
    if modality != "CT" and not sop.startswith("1.2.840.10008.5.1.4.1.1.2"):
        raise _Skip(
            f"not CT (Modality {modality or 'missing'}, SOP class {_sop_name(sop) or 'missing'})",
            lost=False,
        )
    if is_localizer(ds):
        raise _Skip(f"localizer/scout image (ImageType {_image_type(ds)})", lost=False)
    raw = ds._dict.get(PIXEL_DATA_TAG)
    if raw is None:
        if any(t in ds._dict for t in _OTHER_PIXEL_TAGS):
            raise _Skip("floating-point pixel data (not a CT image in stored integers)")
        raise _Skip("no pixel data (header only or truncated before the image)")

    notes: list[str] = []
    rows, cols = int(_tag(ds, "Rows")), int(_tag(ds, "Columns"))
    ba, bs = int(_tag(ds, "BitsAllocated")), int(_tag(ds, "BitsStored"))
    pr = int(_tag(ds, "PixelRepresentation"))
    spp = int(value(ds, "SamplesPerPixel") or 1)
    photometric = str(value(ds, "PhotometricInterpretation") or "").strip().upper()
    if rows <= 0 or cols <= 0:
        raise _Skip(f"contradicting tags: Rows x Columns = {rows} x {cols}")
    if max(rows, cols) > MAX_MATRIX:
        raise _Skip(
            f"implausible matrix for CT: Rows x Columns = {rows} x {cols} (limit "
            f"{MAX_MATRIX} x {MAX_MATRIX}; set LDCT_MAX_MATRIX to allow larger images)"
        )
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise _Skip(
            f"not a greyscale image (SamplesPerPixel {spp}, PhotometricInterpretation "
            f"{photometric or 'missing'})"
        )
    if ba not in (8, 16, 32) or not 1 <= bs <= ba:
        raise _Skip(f"contradicting tags: BitsStored {bs} with BitsAllocated {ba}")
    if pr not in (0, 1):
        raise _Skip(f"contradicting tags: PixelRepresentation {pr} (must be 0 or 1)")
    high_bit = value(ds, "HighBit")
    if high_bit is not None and int(high_bit) != bs - 1:
        notes.append(f"HighBit {high_bit} != BitsStored-1 ({bs - 1}); using BitsStored")
    frames_tag = value(ds, "NumberOfFrames")
    n_frames = 1 if frames_tag is None else int(frames_tag)

    if n_frames < 1:
        raise _Skip(f"contradicting tags: NumberOfFrames {n_frames}")
    expected = rows * cols * n_frames * ba // 8
    if expected > MAX_PIXEL_BYTES:
        raise _Skip(
            f"implausible image size: {rows} x {cols} x {n_frames} frames x {ba} bits "
            f"= {expected / 2**30:.1f} GiB (limit {MAX_PIXEL_BYTES / 2**30:.0f} GiB)"
        )
    tsyntax = _transfer_syntax(ds)
    offset, length = _check_pixel_length(size, raw, tsyntax, expected)
    padding_spec(ds)  # validates PixelPaddingValue early (a bad value -> malformed header)
    header = _strip_pixels(ds)  # in place: every FrameRef shares this pixel-less header
    frames = _frames(path, header, n_frames)
    return FileHeader(
        path, header, tsyntax, rows, cols, ba, bs, pr, n_frames, offset, length, frames, notes,
        study_uid=str(value(ds, "StudyInstanceUID") or ""),
        series_uid=str(value(ds, "SeriesInstanceUID") or ""),
    )  # fmt: skip


def _check_pixel_length(
    size: int, raw: Any, tsyntax: str, expected: int
) -> tuple[int | None, int | None]:
    """Validate the pixel data element; returns (offset, length) for native syntaxes."""
    length = getattr(raw, "length", None)
    tell = getattr(raw, "value_tell", None)
    undefined = length == UNDEFINED_LENGTH or getattr(raw, "is_undefined_length", False)
    if tsyntax in NATIVE_SYNTAXES:
        if undefined:
            raise _Skip(
                f"contradicting tags: encapsulated pixel data in uncompressed transfer syntax "
                f"{tsyntax}"
            )
        if length is None:  # value already loaded (small file): use its byte count
            loaded = getattr(raw, "value", None)
            length = len(loaded) if loaded is not None else 0
        if length < expected:
            raise _Skip(
                f"pixel data too short: {length} bytes, Rows x Columns x frames x "
                f"BitsAllocated/8 needs {expected}"
            )
        if length > expected + (expected & 1):  # one pad byte makes an odd length even
            hint = f" ({length / expected:g} x the declared size)" if length % expected == 0 else ""
            raise _Skip(
                f"pixel data length {length} bytes does not match Rows x Columns x frames x "
                f"BitsAllocated/8 = {expected}{hint}: BitsAllocated, Rows or Columns are wrong"
            )
        if tell is not None:
            if tell + expected > size:
                raise _Skip(
                    f"truncated file: pixel data needs {expected} bytes from offset {tell}, "
                    f"file has {size} bytes"
                )
            return int(tell), int(length)
        return None, None
    if tsyntax == DEFLATED or undefined:
        _check_decoder(tsyntax)
        return None, None
    raise _Skip(
        f"contradicting tags: compressed transfer syntax {tsyntax} without encapsulated pixel data"
    )


def _check_decoder(tsyntax: str) -> None:
    from pydicom.pixels import get_decoder

    if tsyntax == DEFLATED:
        return
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise _Skip(f"unsupported transfer syntax {tsyntax}") from None
    if not decoder.is_available:
        raise _Skip(f"no decoder plugin installed for transfer syntax {_sop_name(tsyntax)}")


def _frames(path: Path, ds: Dataset, n_frames: int) -> list[FrameRef]:
    sop_uid = str(_tag(ds, "SOPInstanceUID"))
    enhanced = PER_FRAME_TAG in ds._dict
    shared = _first(ds.get("SharedFunctionalGroupsSequence")) if enhanced else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") if enhanced else None
    if per_frame is None and n_frames > 1:
        raise _Skip(f"multi-frame image ({n_frames} frames) without per-frame positions")
    out: list[FrameRef] = []
    for i in range(n_frames):
        groups = [g for g in (_first(per_frame[i : i + 1]) if per_frame else None, shared) if g]
        ipp = _functional(groups, "PlanePositionSequence", "ImagePositionPatient")
        iop = _functional(groups, "PlaneOrientationSequence", "ImageOrientationPatient")
        ps = _functional(groups, "PixelMeasuresSequence", "PixelSpacing")
        ipp = ipp if ipp is not None else _tag(ds, "ImagePositionPatient")
        iop = iop if iop is not None else _tag(ds, "ImageOrientationPatient")
        ps = ps if ps is not None else _tag(ds, "PixelSpacing")
        out.append(
            FrameRef(
                path,
                i if per_frame is not None else None,
                sop_uid,
                _floats(ipp, 3, "ImagePositionPatient"),  # type: ignore[arg-type]
                _orientation(iop),
                _spacing(ps),
                rescale_for_frame(ds, groups),
                ds,
            )
        )
    return out


def _first(seq: Any) -> Dataset | None:
    try:
        return seq[0] if seq else None
    except (IndexError, TypeError):
        return None


def _functional(groups: list[Dataset], seq_name: str, tag: str) -> Any:
    for group in groups:
        item = _first(group.get(seq_name))
        if item is not None and item.get(tag) not in (None, ""):
            return item.get(tag)
    return None


def _floats(value: Any, n: int, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise _Skip(f"contradicting tags: {name} is not numeric ({value!r})") from None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        raise _Skip(f"contradicting tags: {name} must hold {n} finite numbers, found {value!r}")
    return out


def _orientation(value: Any) -> tuple[float, float, float, float, float, float]:
    iop = _floats(value, 6, "ImageOrientationPatient")
    row, col = iop[:3], iop[3:]
    if (
        abs(math.hypot(*row) - 1) > _ORTHO_TOL
        or abs(math.hypot(*col) - 1) > _ORTHO_TOL
        or abs(sum(r * c for r, c in zip(row, col, strict=True))) > _ORTHO_TOL
    ):
        raise _Skip(f"contradicting tags: ImageOrientationPatient {iop} is not orthonormal")
    return iop  # type: ignore[return-value]


def _spacing(value: Any) -> tuple[float, float]:
    ps = _floats(value, 2, "PixelSpacing")
    if min(ps) <= 0:
        raise _Skip(f"contradicting tags: PixelSpacing {ps} must be positive")
    return ps  # type: ignore[return-value]


def _strip_pixels(ds: Dataset) -> Dataset:
    for tag in (PIXEL_DATA_TAG, *_OTHER_PIXEL_TAGS):
        if tag in ds._dict:
            del ds[tag]
    return ds


def _image_type(ds: Dataset) -> str:
    found = value(ds, "ImageType")
    return "\\".join(str(v) for v in found) if isinstance(found, (list, tuple)) else str(found)


def _sop_name(uid: str) -> str:
    try:
        name = pydicom.uid.UID(uid).name
    except Exception:
        return uid
    return name or uid
