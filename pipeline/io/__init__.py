"""DICOM input/output: discovery, series grouping, HU conversion, reading and writing series.

Module map:

* ``discover`` -- find DICOM files under paths and group them into CT series (headers only);
  ``header`` (pydicom), ``tags``, ``sop`` parse headers and say what is not a CT image.
* ``geometry`` -- slice order and spacing from ImagePositionPatient, irregularities reported.
* ``decode``, ``stack`` -- pixel decoding to stored values (native in-process, compressed in
  isolated workers) into one (Z, Y, X) array.
* ``hu`` -- stored values <-> HU (rescale, Modality LUT, padding, plausibility): the one place.
* ``read`` -- a scanned series -> :class:`CTVolume` of HU; ``volume`` -- :class:`CTVolume` itself.
* ``write`` -- derived series (denoised, simulated low dose), per slice or whole; ``write_new``
  -- synthetic originals; ``dicom_encode`` -- their shared part (UIDs, geometry, pixels,
  lossless transfer syntaxes, the per-slice tail); ``derived_header`` -- Enhanced CT frames as
  classic CT and the derived-instance rules; ``deid`` -- de-identification of outputs.
* ``suspect`` -- lossy sources and missing Type 1 attributes.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.io.deid import Deidentifier, key_fingerprint
    from pipeline.io.derived_header import DerivedInfo, series_description
    from pipeline.io.dicom_encode import OutputSyntax, WrittenSeries, derive_uid, is_valid_uid
    from pipeline.io.discover import ScanResult, SeriesRecord, SkippedFile, scan
    from pipeline.io.geometry import sort_slices
    from pipeline.io.hu import Rescale, hu_to_stored, stored_range, stored_to_hu, stored_value_hu
    from pipeline.io.read import read_series, read_volume
    from pipeline.io.suspect import is_lossy, record_flags
    from pipeline.io.volume import CTVolume, SliceInfo
    from pipeline.io.write import DerivedSeriesWriter, write_derived_series, write_new_series

_EXPORTS: dict[str, tuple[str, ...]] = {
    "volume": ("CTVolume", "SliceInfo"),
    "discover": ("ScanResult", "SeriesRecord", "SkippedFile", "scan"),
    "geometry": ("sort_slices",),
    "read": ("read_series", "read_volume"),
    "hu": ("Rescale", "hu_to_stored", "stored_range", "stored_to_hu", "stored_value_hu"),
    "write": ("DerivedSeriesWriter", "write_derived_series", "write_new_series"),
    "dicom_encode": ("OutputSyntax", "WrittenSeries", "derive_uid", "is_valid_uid"),
    "derived_header": ("DerivedInfo", "series_description"),
    "deid": ("Deidentifier", "key_fingerprint"),
    "suspect": ("is_lossy", "record_flags"),
}

__all__ = [
    "CTVolume",
    "Deidentifier",
    "DerivedInfo",
    "DerivedSeriesWriter",
    "OutputSyntax",
    "Rescale",
    "ScanResult",
    "SeriesRecord",
    "SkippedFile",
    "SliceInfo",
    "WrittenSeries",
    "derive_uid",
    "hu_to_stored",
    "is_lossy",
    "is_valid_uid",
    "key_fingerprint",
    "read_series",
    "read_volume",
    "record_flags",
    "scan",
    "series_description",
    "sort_slices",
    "stored_range",
    "stored_to_hu",
    "stored_value_hu",
    "write_derived_series",
    "write_new_series",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
