"""The one DICOM writer: derived series (denoised, simulated low dose) and synthetic originals.

Both writers produce classic CT Image Storage files, one file per slice (``IM00001.dcm`` ...),
each written atomically (temp file + rename); Explicit VR Little Endian, uncompressed, unless a
lossless :class:`OutputSyntax` is chosen for a derived series (checked to decode bit-exactly).

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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
)

from pipeline.errors import DicomError
from pipeline.intensity import AIR_HU
from pipeline.io.deid import Deidentifier
from pipeline.io.derived_header import (
    FRAMES_EXTRACTED,
    DerivedInfo,
    apply_derived_rules,
    classic_from_frame,
    creation_time,
)
from pipeline.io.dicom_encode import (
    PATIENT_STUDY_TAGS,
    OutputSyntax,
    SeriesGeometry,
    WrittenSeries,
    check_encoder,
    check_geometry,
    derive_uid,
    file_meta,
    format_ds,
    is_valid_uid,
    set_geometry,
    write_slice_file,
)
from pipeline.io.hu import hu_to_stored, stored_range
from pipeline.io.volume import CTVolume
from pipeline.io.write_new import write_new_series

__all__ = [
    "DerivedSeriesWriter",
    "OutputSyntax",
    "WrittenSeries",
    "derive_uid",
    "hu_to_stored",
    "stored_range",
    "write_derived_series",
    "write_new_series",
]


def _slice_header(source: CTVolume, k: int) -> tuple[Dataset, bool]:
    """A classic-CT header to start slice ``k`` from; True if it holds the source's geometry.

    A classic source slice starts from a copy of its own header; a frame of an Enhanced CT file
    from :func:`classic_from_frame` (its functional groups flattened); a slice without a header
    from the volume's patient/study identifiers only.
    """
    info = source.slices[k] if source.slices else None
    hdr = info.header if info is not None else None
    if hdr is not None and info is not None and info.frame is None:
        ds = copy.deepcopy(hdr)
        if "PixelData" in ds:
            del ds.PixelData
        return ds, True
    if hdr is not None and info is not None and info.frame is not None:
        return classic_from_frame(hdr, info.frame), False
    ds = Dataset()
    top = hdr if hdr is not None else Dataset()
    for kw in PATIENT_STUDY_TAGS:
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
        derived: DerivedInfo | None = None,
        transfer_syntax: OutputSyntax = OutputSyntax.UNCOMPRESSED,
        deidentify: Deidentifier | None = None,
    ) -> None:
        if not source.slices:
            raise DicomError("source volume has no slice records; cannot derive a DICOM series")
        self.study_uid = str(source.meta.get("StudyInstanceUID") or "")
        src_series_uid = str(source.meta.get("SeriesInstanceUID") or "")
        self.for_uid = str(source.meta.get("FrameOfReferenceUID") or "")
        if not self.study_uid or not src_series_uid:
            raise DicomError("source volume meta lacks StudyInstanceUID/SeriesInstanceUID")
        self.geom = SeriesGeometry(
            source.spacing_mm, source.origin_mm, np.asarray(source.direction)
        )
        check_geometry(self.geom)
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
        check_encoder(transfer_syntax)
        self.transfer_syntax = transfer_syntax
        self.deidentify = deidentify
        first = source.slices[0].header
        info = derived or DerivedInfo(model_name="ldct-pipeline")
        # one creation time for the whole series (every instance states the same)
        self.derived = replace(info, created=info.created or creation_time(first))
        self._written: dict[int, tuple[Path, str]] = {}  # slice index -> (path, SOP UID)
        self.n_clipped = 0

    def write_slice(self, k: int, hu_k: np.ndarray) -> tuple[Path, str]:
        """Encode and write slice ``k`` (HU, (Y, X)); returns (file path, SOP Instance UID)."""
        source, info = self.source, self.source.slices[k]
        if k in self._written:
            raise DicomError(f"slice {k} written twice")
        if np.shape(hu_k) != source.hu.shape[1:]:
            raise ValueError(f"derived slice shape {np.shape(hu_k)} != {source.hu.shape[1:]}")
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
                    np.array([AIR_HU]), info.rescale_slope, info.rescale_intercept, bits, pixrep
                )
                fill = int(air[0])
            else:
                fill = int(pad_value)
            stored[padding] = fill
        if info.frame is None:
            sop_uid = derive_uid("sop", info.sop_instance_uid, self.series_uid)
        else:  # Enhanced CT: one SOP Instance UID per frame (all frames share the source's UID)
            frame = f"frame {info.frame}"
            sop_uid = derive_uid("sop", info.sop_instance_uid, frame, self.series_uid)
        src_class = str(
            (info.header.get("SOPClassUID") if info.header is not None else None) or CTImageStorage
        )
        ds.file_meta = file_meta(sop_uid)
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
        if is_valid_uid(info.sop_instance_uid):  # an invalid source UID cannot be referenced
            ref = Dataset()
            ref.ReferencedSOPClassUID = src_class
            ref.ReferencedSOPInstanceUID = info.sop_instance_uid
            if info.frame is not None:
                ref.ReferencedFrameNumber = info.frame + 1
            ds.SourceImageSequence = DicomSequence([ref])
        elif "SourceImageSequence" in ds:
            del ds.SourceImageSequence
        if not own:
            set_geometry(ds, self.geom, k)
            ds.SliceThickness = format_ds([source.spacing_mm[0]])[0]
        rules = self.derived
        if info.frame is not None and FRAMES_EXTRACTED not in rules.derivation_codes:
            rules = replace(rules, derivation_codes=(*rules.derivation_codes, FRAMES_EXTRACTED))
        apply_derived_rules(ds, info.header, rules)
        path, sop_uid = write_slice_file(
            ds,
            stored,
            self.out,
            k,
            slope=info.rescale_slope,
            intercept=info.rescale_intercept,
            bits_stored=bits,
            pixel_representation=pixrep,
            padding_value=None if pad_value is None else int(pad_value),
            extra_tags=self.extra_tags,
            deidentify=self.deidentify,
            syntax=self.transfer_syntax,
        )
        self._written[k] = (path, sop_uid)
        return path, sop_uid

    def finish(self) -> WrittenSeries:
        """The written series; raises :class:`DicomError` if a slice was never written."""
        missing = [k for k in range(len(self.source.slices)) if k not in self._written]
        if missing:
            raise DicomError(f"{len(missing)} of {len(self.source.slices)} slices not written")
        done = [self._written[k] for k in range(len(self.source.slices))]
        n = self.n_clipped
        uid = self.deidentify.uid if self.deidentify is not None else str
        return WrittenSeries(
            out_dir=self.out,
            paths=[p for p, _ in done],
            series_instance_uid=uid(self.series_uid),
            sop_instance_uids=[u for _, u in done],
            series_number=self.number,
            study_instance_uid=uid(self.study_uid),
            frame_of_reference_uid=uid(self.for_uid) if self.for_uid else "",
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
    derived: DerivedInfo | None = None,
    transfer_syntax: OutputSyntax = OutputSyntax.UNCOMPRESSED,
    deidentify: Deidentifier | None = None,
) -> WrittenSeries:
    """Write ``hu`` (Z, Y, X) as a new derived series of ``source`` into ``out_dir``.

    ``uid_key`` names what made the pixels (e.g. model name + weights hash, or "simulate dose=0.25
    seed=0"); the new Series/SOP Instance UIDs are a hash of the source UIDs and this key.
    ``extra_tags`` maps DICOM keywords to values set last (e.g. ``ImageComments``).
    A loop over :class:`DerivedSeriesWriter`.
    """
    hu = np.asarray(hu)
    if hu.shape != source.hu.shape:
        raise ValueError(f"derived HU shape {hu.shape} != source volume shape {source.hu.shape}")
    writer = DerivedSeriesWriter(
        source,
        out_dir,
        series_description=series_description,
        derivation_description=derivation_description,
        uid_key=uid_key,
        series_number=series_number,
        image_type=image_type,
        extra_tags=extra_tags,
        derived=derived,
        transfer_syntax=transfer_syntax,
        deidentify=deidentify,
    )
    for k in range(len(source.slices)):
        writer.write_slice(k, hu[k])
    return writer.finish()
