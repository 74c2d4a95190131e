"""DICOM input/output: discovery, series grouping, HU conversion, derived-series writing."""

from pipeline.io.volume import CTVolume, SliceInfo

__all__ = ["CTVolume", "SliceInfo"]
