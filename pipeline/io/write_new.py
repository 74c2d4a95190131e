"""Synthetic *original* CT series (phantoms, the demo cohort): :func:`write_new_series`."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
)

from pipeline.errors import DicomError
from pipeline.io.dicom_encode import (
    SeriesGeometry,
    WrittenSeries,
    check_geometry,
    derive_uid,
    file_meta,
    format_ds,
    set_geometry,
    write_slice_file,
)
from pipeline.io.hu import hu_to_stored


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
        raise ValueError(f"hu must be (Z, Y, X), found shape {hu.shape}")
    if bits_stored not in (12, 16):
        raise DicomError(f"bits_stored must be 12 or 16, found {bits_stored}")
    geom = _geometry(spacing_mm, origin_mm, direction)
    pixrep, pad_stored = (1, -2000) if bits_stored == 16 else (0, 0)
    study = study_uid or derive_uid("study", patient_id, uid_key)
    for_uid = frame_of_reference_uid or derive_uid("for", study)
    series_uid = derive_uid("series", study, series_description, str(series_number), uid_key)
    template = _series_template(
        geom,
        (study, series_uid, for_uid),
        patient=(patient_id, patient_name),
        descriptions=(study_description, series_description),
        series_number=series_number,
        image_type=image_type,
        study_date=study_date,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pixels = (bits_stored, pixrep, pad_stored)
    paths, sop_uids, n_clipped = _write_slices(
        hu, padding_mask, out, template, geom, series_uid, pixels, extra_tags
    )
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


def _series_template(
    geom: SeriesGeometry,
    uids: tuple[str, str, str],
    *,
    patient: tuple[str, str],
    descriptions: tuple[str, str],
    series_number: int,
    image_type: Sequence[str],
    study_date: str,
) -> Dataset:
    """The tags every slice of a synthetic original series shares (no pixel module; the
    per-slice SOP Instance UID, InstanceNumber and position are set by the caller).

    ``uids`` is (study, series, frame of reference); ``patient`` (ID, name); ``descriptions``
    (study, series).
    """
    study, series_uid, for_uid = uids
    patient_id, patient_name = patient
    study_description, series_description = descriptions
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(image_type)
    ds.SOPClassUID = CTImageStorage
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
    ds.SliceThickness = format_ds([geom.spacing_mm[0]])[0]
    ds.SpacingBetweenSlices = format_ds([geom.spacing_mm[0]])[0]
    ds.KVP = "120"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = int(series_number)
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    return ds


def _geometry(
    spacing_mm: tuple[float, float, float],
    origin_mm: tuple[float, float, float],
    direction: np.ndarray,
) -> SeriesGeometry:
    geom = SeriesGeometry(
        tuple(float(v) for v in spacing_mm),  # type: ignore[arg-type]
        tuple(float(v) for v in origin_mm),  # type: ignore[arg-type]
        np.asarray(direction, dtype=np.float64).reshape(3, 3),
    )
    check_geometry(geom)
    return geom


def _write_slices(
    hu: np.ndarray,
    padding_mask: np.ndarray | None,
    out: Path,
    template: Dataset,
    geom: SeriesGeometry,
    series_uid: str,
    pixels: tuple[int, int, int],
    extra_tags: dict[str, Any] | None,
) -> tuple[list[Path], list[str], int]:
    """Write every slice from ``template``; ``pixels`` is (BitsStored, PixelRepresentation,
    stored padding value). Returns the paths, SOP Instance UIDs and the clip count."""
    bits_stored, pixrep, pad_stored = pixels
    paths: list[Path] = []
    sop_uids: list[str] = []
    n_clipped = 0
    for k in range(hu.shape[0]):
        stored, clipped = hu_to_stored(hu[k], 1.0, -1024.0, bits_stored, pixrep)
        n_clipped += clipped
        if padding_mask is not None:
            stored[padding_mask[k]] = pad_stored
        sop_uid = derive_uid("sop", series_uid, str(k))
        ds = copy.deepcopy(template)
        ds.file_meta = file_meta(sop_uid)
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        set_geometry(ds, geom, k)
        path, _ = write_slice_file(
            ds,
            stored,
            out,
            k,
            slope=1.0,
            intercept=-1024.0,
            bits_stored=bits_stored,
            pixel_representation=pixrep,
            padding_value=None if padding_mask is None else pad_stored,
            extra_tags=extra_tags,
        )
        paths.append(path)
        sop_uids.append(sop_uid)
    return paths, sop_uids, n_clipped
