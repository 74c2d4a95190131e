"""The shared part of the DICOM writers: UIDs, file meta, geometry tags, pixel module, the
lossless transfer syntaxes, and :func:`write_slice_file`, the per-slice tail both writers end with.

:mod:`pipeline.io.write` (derived series) and :mod:`pipeline.io.write_new` (synthetic originals)
build each slice's header their own way and hand it here with the slice's stored values;
HU -> stored values live in :mod:`pipeline.io.hu`.

>>> format_ds([0.1 + 0.2, -1024.0])
['0.3', '-1024']
>>> is_valid_uid(derive_uid("series", "1.2.3", "key")), is_valid_uid("1.02")
(True, False)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from pipeline import __version__
from pipeline.errors import DicomError, GeometryError
from pipeline.utils.files import atomic_path, ensure_inside

__all__ = [
    "J2K_MIN_SIDE",
    "PATIENT_STUDY_TAGS",
    "STALE_PIXEL_TAGS",
    "OutputSyntax",
    "SeriesGeometry",
    "WrittenSeries",
    "apply_extra_tags",
    "check_encoder",
    "check_geometry",
    "derive_uid",
    "encode_pixels",
    "file_meta",
    "format_ds",
    "is_valid_uid",
    "set_geometry",
    "set_pixels",
    "write_file",
    "write_slice_file",
]

#: tags that describe the *stored pixels* of the source and become wrong after rewriting them
STALE_PIXEL_TAGS = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "PixelDataProviderURL",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "IconImageSequence",
)
#: top-level tags copied from an Enhanced (multi-frame) source when building classic slices
PATIENT_STUDY_TAGS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "Manufacturer",
    "InstitutionName",
    "BodyPartExamined",
    "KVP",
)


@dataclass(frozen=True)
class WrittenSeries:
    """What a writer produced: where, which UIDs, and how many voxels had to be clipped."""

    out_dir: Path
    paths: list[Path]
    series_instance_uid: str
    sop_instance_uids: list[str]
    series_number: int
    study_instance_uid: str
    frame_of_reference_uid: str
    #: voxels whose HU fell outside the storable range and were clipped
    n_clipped: int = 0
    warnings: list[str] = field(default_factory=list)


def derive_uid(*parts: str) -> str:
    """A deterministic ``2.25.<int>`` UID from the given strings (same parts -> same UID).

    pydicom's ``generate_uid(prefix=None)`` ignores ``entropy_srcs`` (it returns a random UUID
    UID), so the hash is taken here: the first 120 bits of SHA-256 as a decimal integer, as in
    DICOM PS3.5 B.2 (UUID-derived ``2.25`` root; at most 41 characters, well within 64).
    """
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8")).digest()
    return "2.25." + str(int.from_bytes(digest[:15], "big"))


_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(uid: str) -> bool:
    """True for a UID that conforms to PS3.5 9.1 (digit components, no leading zeros, <= 64)."""
    return 0 < len(uid) <= 64 and bool(_UID_RE.match(uid))


def file_meta(sop_uid: str) -> FileMetaDataset:
    """File meta of a CT Image Storage instance in Explicit VR Little Endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"LDCT_{__version__}"[:16]
    return meta


def format_ds(values: Sequence[float]) -> list[str]:
    """Decimal strings of at most 16 characters (DS VR limit)."""
    out = []
    for v in values:
        s = f"{float(v):.10g}"
        if len(s) > 16:
            s = f"{float(v):.8g}"
        out.append(s)
    return out


def set_geometry(ds: Dataset, volume_geom: SeriesGeometry, k: int) -> None:
    """Image Plane tags of slice ``k`` of an evenly spaced series."""
    ds.ImagePositionPatient = format_ds(volume_geom.position(k))
    ds.ImageOrientationPatient = format_ds(volume_geom.orientation())
    ds.PixelSpacing = format_ds([volume_geom.spacing_mm[1], volume_geom.spacing_mm[2]])
    ds.SliceLocation = format_ds([float(np.dot(volume_geom.position(k), volume_geom.normal))])[0]


@dataclass(frozen=True)
class SeriesGeometry:
    """Spacing (z, y, x), origin and direction (columns = x, y, z axes) of a written series."""

    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        return np.asarray(self.direction[:, 2], dtype=np.float64)

    def position(self, k: int) -> list[float]:
        return list(np.asarray(self.origin_mm) + self.normal * self.spacing_mm[0] * k)

    def orientation(self) -> list[float]:
        return [*self.direction[:, 0].tolist(), *self.direction[:, 1].tolist()]


def check_geometry(geom: SeriesGeometry) -> None:
    """Refuse a non-orthonormal direction or a non-positive spacing (:class:`GeometryError`)."""
    d = geom.direction
    if d.shape != (3, 3) or not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise GeometryError(f"direction must be an orthonormal 3x3 matrix, found {d.tolist()}")
    if min(geom.spacing_mm) <= 0:
        raise GeometryError(f"spacing_mm must be positive, found {geom.spacing_mm}")


class OutputSyntax(str, Enum):
    """Transfer syntax of written files: uncompressed (default) or one of three lossless ones."""

    UNCOMPRESSED = "uncompressed"  # Explicit VR Little Endian
    RLE = "rle"  # RLE Lossless (pylibjpeg-rle)
    JPEG_LS = "jpeg-ls"  # JPEG-LS Lossless (pyjpegls / CharLS)
    JPEG2000 = "jpeg2000"  # JPEG 2000 Lossless Only (pylibjpeg-openjpeg)

    @property
    def uid(self) -> UID:
        return _SYNTAX_UIDS[self]


_SYNTAX_UIDS = {
    OutputSyntax.UNCOMPRESSED: ExplicitVRLittleEndian,
    OutputSyntax.RLE: RLELossless,
    OutputSyntax.JPEG_LS: JPEGLSLossless,
    OutputSyntax.JPEG2000: JPEG2000Lossless,
}
#: smallest image side pylibjpeg-openjpeg encodes (it always uses 6 DWT resolution levels)
J2K_MIN_SIDE = 32
_SYNTAX_PLUGINS = {
    OutputSyntax.RLE: "pylibjpeg",
    OutputSyntax.JPEG_LS: "pyjpegls",
    OutputSyntax.JPEG2000: "pylibjpeg",
}


def check_encoder(syntax: OutputSyntax) -> None:
    """Raise :class:`DicomError` if the encoder plugin of ``syntax`` is not installed."""
    if syntax is OutputSyntax.UNCOMPRESSED:
        return
    from pydicom.pixels import get_encoder

    encoder = get_encoder(syntax.uid)
    plugin = _SYNTAX_PLUGINS[syntax]
    if plugin not in encoder.available_plugins:
        missing = encoder.missing_dependencies
        raise DicomError(
            f"output transfer syntax {syntax.value} needs the {plugin} encoder plugin, which is "
            f"not available ({'; '.join(missing) or 'not installed'})"
        )


def encode_pixels(ds: Dataset, stored: np.ndarray, syntax: OutputSyntax) -> None:
    """Compress ``ds``'s pixel data losslessly in place and check it decodes to ``stored``.

    The SOP Instance UID is kept (pydicom would generate a new one by default). A decoded image
    that differs from ``stored`` in any pixel raises :class:`DicomError`: the option promises
    lossless output, so a faulty encoder must fail the series, not alter it.
    """
    if syntax is OutputSyntax.UNCOMPRESSED:
        return
    if syntax is OutputSyntax.JPEG2000 and min(stored.shape) < J2K_MIN_SIDE:
        raise DicomError(
            f"jpeg2000 output needs images of at least {J2K_MIN_SIDE}x{J2K_MIN_SIDE} pixels "
            f"(OpenJPEG codes 6 resolution levels), found {stored.shape[0]}x{stored.shape[1]}; "
            "choose another output transfer syntax"
        )
    ds.compress(syntax.uid, encoding_plugin=_SYNTAX_PLUGINS[syntax], generate_instance_uid=False)
    if not np.array_equal(ds.pixel_array, stored):
        raise DicomError(f"{syntax.value} encoder output does not decode to the written pixels")
    ds.file_meta.TransferSyntaxUID = syntax.uid


def write_file(ds: Dataset, path: Path) -> None:
    """Save ``ds`` as a DICOM file (preamble + file meta) atomically at ``path``."""
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def apply_extra_tags(ds: Dataset, extra_tags: dict[str, Any] | None) -> None:
    """Set caller-given tags (DICOM keyword -> value) last, over anything set before."""
    for keyword, value in (extra_tags or {}).items():
        setattr(ds, keyword, value)


def set_pixels(
    ds: Dataset, stored: np.ndarray, bits_stored: int, pixel_representation: int
) -> None:
    """The Image Pixel module for 16-bit allocated ``stored`` (Y, X); stale pixel tags dropped."""
    rows, cols = stored.shape
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.SamplesPerPixel = 1
    if ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = int(bits_stored)
    ds.HighBit = int(bits_stored) - 1
    ds.PixelRepresentation = int(pixel_representation)
    for kw in STALE_PIXEL_TAGS:
        if kw in ds:
            delattr(ds, kw)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    ds["PixelData"].VR = "OW"


def write_slice_file(
    ds: Dataset,
    stored: np.ndarray,
    out_dir: Path,
    index: int,
    *,
    slope: float,
    intercept: float,
    bits_stored: int,
    pixel_representation: int,
    padding_value: int | None,
    extra_tags: dict[str, Any] | None = None,
    deidentify: Callable[[Dataset], Dataset] | None = None,
    syntax: OutputSyntax = OutputSyntax.UNCOMPRESSED,
) -> tuple[Path, str]:
    """The tail of every written slice: rescale and padding tags, pixels, caller tags,
    de-identification, lossless encoding, then ``IM{index + 1:05d}.dcm`` written atomically.

    ``ds`` holds the slice's identifiers, geometry and derived-instance tags; ``stored`` its
    stored values (padding already filled). ``padding_value`` (stored units) is written as
    PixelPaddingValue (SS for signed pixel data, US otherwise) unless None. Returns the path and
    the SOP Instance UID the file holds (de-identification may have replaced it).
    """
    ds.RescaleSlope = format_ds([slope])[0]
    ds.RescaleIntercept = format_ds([intercept])[0]
    ds.RescaleType = "HU"
    if padding_value is not None:
        ds.PixelPaddingValue = int(padding_value)
        ds["PixelPaddingValue"].VR = "SS" if pixel_representation == 1 else "US"
    set_pixels(ds, stored, bits_stored, pixel_representation)
    apply_extra_tags(ds, extra_tags)
    if deidentify is not None:
        ds = deidentify(ds)
    encode_pixels(ds, stored, syntax)
    path = ensure_inside(out_dir, out_dir / f"IM{index + 1:05d}.dcm")
    write_file(ds, path)
    return path, str(ds.SOPInstanceUID)
