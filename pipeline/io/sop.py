"""Which DICOM objects are not CT images: SOP classes and image types we skip, with the reason."""

from __future__ import annotations

from pydicom.dataset import Dataset

from pipeline.io.tags import value

DICOMDIR_SOP = "1.2.840.10008.1.3.10"
CT_IMAGE_SOPS = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}
_PREFIX_REASONS = (
    ("1.2.840.10008.5.1.4.1.1.88.", "structured report (e.g. a dose report), not an image"),
    ("1.2.840.10008.5.1.4.1.1.7", "secondary capture (screenshot-like image, no CT geometry)"),
    (
        "1.2.840.10008.5.1.4.1.1.481.",
        "radiotherapy object (RT dose/plan/structure), not a CT image",
    ),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation state, not an image"),
    ("1.2.840.10008.5.1.4.1.1.9.", "waveform, not an image"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated document, not an image"),
    ("1.2.840.10008.5.1.4.1.1.66", "raw data / registration / segmentation object, not an image"),
)


def classify_sop(ds: Dataset) -> str | None:
    """Skip reason for a non-image object (DICOMDIR, SR, SC, RT...), or None if it may be CT."""
    media_sop = ""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        media_sop = str(value(meta, "MediaStorageSOPClassUID") or "")
    if media_sop == DICOMDIR_SOP or "DirectoryRecordSequence" in ds:
        return "DICOMDIR (media directory index, not an image)"
    sop = str(value(ds, "SOPClassUID") or media_sop)
    if sop in CT_IMAGE_SOPS:
        return None
    for prefix, reason in _PREFIX_REASONS:
        if sop.startswith(prefix):
            return reason
    return None


def is_localizer(ds: Dataset) -> bool:
    """True for scout/localizer images (ImageType value 3, or FrameType for Enhanced CT)."""
    for name in ("ImageType", "FrameType"):
        found = value(ds, name)
        if found is None:
            continue
        values = (
            [str(v).strip().upper() for v in found]
            if not isinstance(found, str)
            else [v.strip().upper() for v in found.split("\\")]
        )
        if len(values) >= 3 and values[2] == "LOCALIZER":
            return True
    return False
