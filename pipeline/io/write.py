"""The one DICOM writer: derived series (denoised, simulated low dose) and synthetic originals.

Both writers produce classic CT Image Storage files, Explicit VR Little Endian, uncompressed,
one file per slice (``IM00001.dcm`` ...), each written atomically (temp file + rename).

* :func:`write_derived_series` -- a new series in the *same* study and frame of reference as
  ``source`` (DICOM PS3.3 C.7.6.1 / C.12.1): new Series/SOP Instance UIDs derived
  deterministically from the source UIDs and ``uid_key`` (a rerun rewrites the same UIDs instead
  of creating duplicates), ImageType ``DERIVED\\SECONDARY\\AXIAL``, DerivationDescription,
  SourceImageSequence per slice, HU stored with the source rescale, clipped to the BitsStored
  range (the clip count is returned), padding restored with the source PixelPaddingValue.
* :class:`DerivedSeriesWriter` -- the same, one slice at a time (streaming producers).
* :func:`write_new_series` -- an *original* series for synthetic data (phantoms, demo cohort).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
)

from pipeline import __version__
from pipeline.errors import DicomError, GeometryError
from pipeline.io.volume import CTVolume
from pipeline.utils.files import atomic_path, ensure_inside

#: tags that describe the *stored pixels* of the source and become wrong after rewriting them
_STALE_PIXEL_TAGS = (
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
_PATIENT_STUDY_TAGS = (
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


def stored_range(bits_stored: int, pixel_representation: int) -> tuple[int, int]:
    """Inclusive stored-value range (PixelRepresentation 0 unsigned, 1 signed)."""
    if not 1 <= bits_stored <= 16:
        raise DicomError(f"BitsStored must be 1..16 for a 16-bit CT writer, found {bits_stored}")
    if pixel_representation == 1:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def hu_to_stored(
    hu: np.ndarray,
    slope: float,
    intercept: float,
    bits_stored: int,
    pixel_representation: int,
    ignore: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """HU -> rounded stored integers clipped to the storable range, and the clip count.

    Voxels where ``ignore`` is True (padding, overwritten afterwards) are not counted.
    """
    if slope == 0 or not np.isfinite(slope) or not np.isfinite(intercept):
        raise DicomError(f"unusable rescale slope/intercept {slope}/{intercept}")
    raw = np.rint((np.asarray(hu, dtype=np.float64) - intercept) / slope)
    lo, hi = stored_range(bits_stored, pixel_representation)
    out_of_range = (raw < lo) | (raw > hi) | ~np.isfinite(raw)
    if ignore is not None:
        out_of_range &= ~np.asarray(ignore, dtype=bool)
    n_clipped = int(np.count_nonzero(out_of_range))
    raw = np.clip(np.nan_to_num(raw, nan=(0 - intercept) / slope), lo, hi)
    dtype = np.int16 if pixel_representation == 1 else np.uint16
    return raw.astype(dtype), n_clipped


def _file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"LDCT_{__version__}"[:16]
    return meta


def _fmt_ds(values: Sequence[float]) -> list[str]:
    """Decimal strings of at most 16 characters (DS VR limit)."""
    out = []
    for v in values:
        s = f"{float(v):.10g}"
        if len(s) > 16:
            s = f"{float(v):.8g}"
        out.append(s)
    return out


def _set_geometry(ds: Dataset, volume_geom: _Geometry, k: int) -> None:
    ds.ImagePositionPatient = _fmt_ds(volume_geom.position(k))
    ds.ImageOrientationPatient = _fmt_ds(volume_geom.orientation())
    ds.PixelSpacing = _fmt_ds([volume_geom.spacing_mm[1], volume_geom.spacing_mm[2]])
    ds.SliceLocation = _fmt_ds([float(np.dot(volume_geom.position(k), volume_geom.normal))])[0]


@dataclass(frozen=True)
class _Geometry:
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


def _check_geometry(geom: _Geometry) -> None:
    d = geom.direction
    if d.shape != (3, 3) or not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise GeometryError(f"direction must be an orthonormal 3x3 matrix, found {d.tolist()}")
    if min(geom.spacing_mm) <= 0:
        raise GeometryError(f"spacing_mm must be positive, found {geom.spacing_mm}")


def _write_file(ds: Dataset, path: Path) -> None:
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def _apply_extra(ds: Dataset, extra_tags: dict[str, Any] | None) -> None:
    for keyword, value in (extra_tags or {}).items():
        setattr(ds, keyword, value)


def _pixels(ds: Dataset, stored: np.ndarray, bits_stored: int, pixel_representation: int) -> None:
    rows, cols = stored.shape
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.SamplesPerPixel = 1
    if ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = int(bits_stored)
    ds.HighBit = int(bits_stored) - 1
    ds.PixelRepresentation = int(pixel_representation)
    for kw in _STALE_PIXEL_TAGS:
        if kw in ds:
            delattr(ds, kw)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    ds["PixelData"].VR = "OW"


def _slice_header(source: CTVolume, k: int) -> tuple[Dataset, bool]:
    """A classic-CT header to start slice ``k`` from; True if it was the source's own header."""
    info = source.slices[k] if source.slices else None
    hdr = info.header if info is not None else None
    if hdr is not None and info is not None and info.frame is None:
        ds = copy.deepcopy(hdr)
        if "PixelData" in ds:
            del ds.PixelData
        return ds, True
    ds = Dataset()
    top = hdr if hdr is not None else Dataset()
    for kw in _PATIENT_STUDY_TAGS:
        if kw in top:
            setattr(ds, kw, top[kw].value)
    for kw in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID"):
        if kw not in ds and source.meta.get(kw):
            setattr(ds, kw, source.meta[kw])
    return ds, False


def _source_int(source: CTVolume, ds: Dataset, keyword: str, default: int) -> int:
    value = source.meta.get(keyword)
    if value is None:
        value = ds.get(keyword, default)
    return int(value) if value is not None else default


def _default_series_number(source_number: int, uid_key: str, source_series_uid: str) -> int:
    """A new, deterministic SeriesNumber (source number + 1000..9999, keyed by uid_key)."""
    h = int(hashlib.sha256(f"{source_series_uid}|{uid_key}".encode()).hexdigest(), 16)
    return int(source_number) + 1000 + h % 9000


class DerivedSeriesWriter:
    """Writes a derived series of ``source`` one slice at a time (see :func:`write_derived_series`).

    Lets a producer (e.g. ``ldct denoise``) write each slice as soon as it exists, overlapping
    encoding and disk I/O with the computation of the next slices. Slices may come in any order;
    :meth:`finish` requires all of them and returns the same :class:`WrittenSeries` (UIDs,
    headers, clip count) as :func:`write_derived_series`. Not thread-safe: one writer, one thread.
    """

    def __init__(
        self,
        source: CTVolume,
        out_dir: str | Path,
        *,
        series_description: str,
        derivation_description: str,
        uid_key: str,
        series_number: int | None = None,
        image_type: Sequence[str] = ("DERIVED", "SECONDARY", "AXIAL"),
        extra_tags: dict[str, Any] | None = None,
    ) -> None:
        if not source.slices:
            raise DicomError("source volume has no slice records; cannot derive a DICOM series")
        self.study_uid = str(source.meta.get("StudyInstanceUID") or "")
        src_series_uid = str(source.meta.get("SeriesInstanceUID") or "")
        self.for_uid = str(source.meta.get("FrameOfReferenceUID") or "")
        if not self.study_uid or not src_series_uid:
            raise DicomError("source volume meta lacks StudyInstanceUID/SeriesInstanceUID")
        self.geom = _Geometry(source.spacing_mm, source.origin_mm, np.asarray(source.direction))
        _check_geometry(self.geom)
        self.source = source
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.series_uid = derive_uid("series", src_series_uid, uid_key)
        src_number = int(source.meta.get("SeriesNumber") or 0)
        self.number = int(
            series_number
            if series_number is not None
            else _default_series_number(src_number, uid_key, src_series_uid)
        )
        self.series_description = series_description[:64]
        self.derivation_description = derivation_description[:1024]
        self.image_type = list(image_type)
        self.extra_tags = extra_tags
        self._written: dict[int, tuple[Path, str]] = {}  # slice index -> (path, SOP UID)
        self.n_clipped = 0

    def write_slice(self, k: int, hu_k: np.ndarray) -> tuple[Path, str]:
        """Encode and write slice ``k`` (HU, (Y, X)); returns (file path, SOP Instance UID)."""
        source, info = self.source, self.source.slices[k]
        if k in self._written:
            raise DicomError(f"slice {k} written twice")
        if np.shape(hu_k) != source.hu.shape[1:]:
            raise GeometryError(f"derived slice shape {np.shape(hu_k)} != {source.hu.shape[1:]}")
        ds, own = _slice_header(source, k)
        bits = _source_int(source, ds, "BitsStored", 16)
        pixrep = _source_int(source, ds, "PixelRepresentation", 1)
        padding = None if source.padding_mask is None else source.padding_mask[k]
        stored, clipped = hu_to_stored(
            hu_k, info.rescale_slope, info.rescale_intercept, bits, pixrep, ignore=padding
        )
        self.n_clipped += clipped
        pad_value = source.meta.get("PixelPaddingValue")
        if padding is not None and padding.any():
            if pad_value is None:
                air, _ = hu_to_stored(
                    np.array([-1000.0]), info.rescale_slope, info.rescale_intercept, bits, pixrep
                )
                fill = int(air[0])
            else:
                fill = int(pad_value)
            stored[padding] = fill
        sop_uid = derive_uid("sop", info.sop_instance_uid, self.series_uid)
        src_class = str(
            (info.header.get("SOPClassUID") if info.header is not None else None) or CTImageStorage
        )
        ds.file_meta = _file_meta(sop_uid)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.Modality = "CT"
        ds.StudyInstanceUID = self.study_uid
        ds.SeriesInstanceUID = self.series_uid
        if self.for_uid:
            ds.FrameOfReferenceUID = self.for_uid
        ds.SeriesNumber = self.number
        ds.InstanceNumber = k + 1
        ds.ImageType = list(self.image_type)
        ds.SeriesDescription = self.series_description
        ds.DerivationDescription = self.derivation_description
        ref = Dataset()
        ref.ReferencedSOPClassUID = src_class
        ref.ReferencedSOPInstanceUID = info.sop_instance_uid
        if info.frame is not None:
            ref.ReferencedFrameNumber = info.frame + 1
        ds.SourceImageSequence = DicomSequence([ref])
        if not own:
            _set_geometry(ds, self.geom, k)
            ds.SliceThickness = _fmt_ds([source.spacing_mm[0]])[0]
        ds.RescaleSlope = _fmt_ds([info.rescale_slope])[0]
        ds.RescaleIntercept = _fmt_ds([info.rescale_intercept])[0]
        ds.RescaleType = "HU"
        if pad_value is not None:
            ds.PixelPaddingValue = int(pad_value)
            ds["PixelPaddingValue"].VR = "SS" if pixrep == 1 else "US"
        _pixels(ds, stored, bits, pixrep)
        _apply_extra(ds, self.extra_tags)
        path = ensure_inside(self.out, self.out / f"IM{k + 1:05d}.dcm")
        _write_file(ds, path)
        self._written[k] = (path, sop_uid)
        return path, sop_uid

    def finish(self) -> WrittenSeries:
        """The written series; raises :class:`DicomError` if a slice was never written."""
        missing = [k for k in range(len(self.source.slices)) if k not in self._written]
        if missing:
            raise DicomError(f"{len(missing)} of {len(self.source.slices)} slices not written")
        done = [self._written[k] for k in range(len(self.source.slices))]
        n = self.n_clipped
        return WrittenSeries(
            out_dir=self.out,
            paths=[p for p, _ in done],
            series_instance_uid=self.series_uid,
            sop_instance_uids=[u for _, u in done],
            series_number=self.number,
            study_instance_uid=self.study_uid,
            frame_of_reference_uid=self.for_uid,
            n_clipped=n,
            warnings=[f"{n} voxels clipped to the stored range"] if n else [],
        )


def write_derived_series(
    source: CTVolume,
    hu: np.ndarray,
    out_dir: str | Path,
    *,
    series_description: str,
    derivation_description: str,
    uid_key: str,
    series_number: int | None = None,
    image_type: Sequence[str] = ("DERIVED", "SECONDARY", "AXIAL"),
    extra_tags: dict[str, Any] | None = None,
) -> WrittenSeries:
    """Write ``hu`` (Z, Y, X) as a new derived series of ``source`` into ``out_dir``.

    ``uid_key`` names what made the pixels (e.g. model name + weights hash, or "simulate dose=0.25
    seed=0"); the new Series/SOP Instance UIDs are a hash of the source UIDs and this key.
    ``extra_tags`` maps DICOM keywords to values set last (e.g. ``ImageComments``).
    A loop over :class:`DerivedSeriesWriter`.
    """
    hu = np.asarray(hu)
    if hu.shape != source.hu.shape:
        raise GeometryError(f"derived HU shape {hu.shape} != source volume shape {source.hu.shape}")
    writer = DerivedSeriesWriter(
        source,
        out_dir,
        series_description=series_description,
        derivation_description=derivation_description,
        uid_key=uid_key,
        series_number=series_number,
        image_type=image_type,
        extra_tags=extra_tags,
    )
    for k in range(len(source.slices)):
        writer.write_slice(k, hu[k])
    return writer.finish()


def write_new_series(
    hu: np.ndarray,
    spacing_mm: tuple[float, float, float],
    origin_mm: tuple[float, float, float],
    direction: np.ndarray,
    out_dir: str | Path,
    *,
    patient_id: str,
    patient_name: str,
    study_uid: str | None = None,
    series_description: str,
    series_number: int = 1,
    frame_of_reference_uid: str | None = None,
    uid_key: str = "",
    study_description: str = "Synthetic CT",
    bits_stored: int = 16,
    padding_mask: np.ndarray | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    study_date: str = "20260101",
    extra_tags: dict[str, Any] | None = None,
) -> WrittenSeries:
    """Write ``hu`` (Z, Y, X) as an original CT Image Storage series (synthetic data).

    Rescale is slope 1 / intercept -1024. ``bits_stored=16`` stores signed values (no clipping
    of realistic HU); ``bits_stored=12`` stores unsigned 0..4095 like many scanners (HU clipped
    to [-1024, 3071]). Padding voxels (``padding_mask``) get PixelPaddingValue (-2000 signed,
    0 unsigned). UIDs not given are derived from ``patient_id`` and ``uid_key`` (deterministic).
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise GeometryError(f"hu must be (Z, Y, X), found shape {hu.shape}")
    if bits_stored not in (12, 16):
        raise DicomError(f"bits_stored must be 12 or 16, found {bits_stored}")
    geom = _Geometry(
        tuple(float(v) for v in spacing_mm),  # type: ignore[arg-type]
        tuple(float(v) for v in origin_mm),  # type: ignore[arg-type]
        np.asarray(direction, dtype=np.float64).reshape(3, 3),
    )
    _check_geometry(geom)
    pixrep = 1 if bits_stored == 16 else 0
    pad_stored = -2000 if pixrep == 1 else 0
    study = study_uid or derive_uid("study", patient_id, uid_key)
    for_uid = frame_of_reference_uid or derive_uid("for", study)
    series_uid = derive_uid("series", study, series_description, str(series_number), uid_key)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    sop_uids: list[str] = []
    n_clipped = 0
    for k in range(hu.shape[0]):
        stored, clipped = hu_to_stored(hu[k], 1.0, -1024.0, bits_stored, pixrep)
        n_clipped += clipped
        if padding_mask is not None:
            stored[padding_mask[k]] = pad_stored
        sop_uid = derive_uid("sop", series_uid, str(k))
        ds = Dataset()
        ds.file_meta = _file_meta(sop_uid)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = list(image_type)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.AccessionNumber = ""
        ds.Modality = "CT"
        ds.Manufacturer = "ldct-pipeline (synthetic)"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = study_description[:64]
        ds.SeriesDescription = series_description[:64]
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.BodyPartExamined = "ABDOMEN"
        ds.SliceThickness = _fmt_ds([geom.spacing_mm[0]])[0]
        ds.SpacingBetweenSlices = _fmt_ds([geom.spacing_mm[0]])[0]
        ds.KVP = "120"
        ds.PatientPosition = "FFS"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = int(series_number)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        _set_geometry(ds, geom, k)
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        if padding_mask is not None:
            ds.PixelPaddingValue = pad_stored
            ds["PixelPaddingValue"].VR = "SS" if pixrep == 1 else "US"
        _pixels(ds, stored, bits_stored, pixrep)
        _apply_extra(ds, extra_tags)
        path = ensure_inside(out, out / f"IM{k + 1:05d}.dcm")
        _write_file(ds, path)
        paths.append(path)
        sop_uids.append(sop_uid)
    return WrittenSeries(
        out_dir=out,
        paths=paths,
        series_instance_uid=series_uid,
        sop_instance_uids=sop_uids,
        series_number=int(series_number),
        study_instance_uid=study,
        frame_of_reference_uid=for_uid,
        n_clipped=n_clipped,
        warnings=[f"{n_clipped} voxels clipped to the stored range"] if n_clipped else [],
    )
