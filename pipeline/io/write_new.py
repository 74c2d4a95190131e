"""Synthetic *original* CT series (phantoms, the demo cohort): :func:`write_new_series`."""

from __future__ import annotations

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
    geom = SeriesGeometry(
        tuple(float(v) for v in spacing_mm),  # type: ignore[arg-type]
        tuple(float(v) for v in origin_mm),  # type: ignore[arg-type]
        np.asarray(direction, dtype=np.float64).reshape(3, 3),
    )
    check_geometry(geom)
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
        ds.file_meta = file_meta(sop_uid)
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
        ds.SliceThickness = format_ds([geom.spacing_mm[0]])[0]
        ds.SpacingBetweenSlices = format_ds([geom.spacing_mm[0]])[0]
        ds.KVP = "120"
        ds.PatientPosition = "FFS"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = int(series_number)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        set_geometry(ds, geom, k)
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
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
