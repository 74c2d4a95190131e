"""Stream one series' denoised slices into its staging folder while the model runs on the next.

A :class:`SeriesSink` belongs to one series. The runner hands it each finished inference batch
(``write(start, stop)``, called on the single writer thread, so batches are written in order while
the main thread runs the next batch); :meth:`SeriesSink.publish` then adds the NIfTI file and the
completion marker and renames the staging folder into place. Nothing becomes visible before that
rename: a failure at any point (writer, model, kill) leaves only the staging folder, which is
removed (:meth:`SeriesSink.discard`, or by the next run). No extra memory is needed: the slices are
written from the series' own HU array, which the model fills in place.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from pipeline.errors import DicomError
from pipeline.infer.publish import Completion, discard, new_staging, publish, staging_parts
from pipeline.intensity import AIR_HU
from pipeline.io.deid import Deidentifier
from pipeline.io.derived_header import DerivedInfo
from pipeline.io.hu import stored_value_hu
from pipeline.io.volume import CTVolume
from pipeline.io.write import DerivedSeriesWriter, OutputSyntax

log = logging.getLogger(__name__)

NIFTI_NAME = "denoised.nii.gz"


@dataclass(frozen=True)
class SinkOptions:
    """What to write for a series and how to label the derived DICOM series."""

    dicom: bool
    nifti: bool
    series_description: str
    derivation_description: str
    uid_key: str
    #: equipment/software/derivation codes stated in every derived instance
    derived: DerivedInfo | None = None
    transfer_syntax: OutputSyntax = OutputSyntax.UNCOMPRESSED
    deidentify: Deidentifier | None = None


class SeriesSink:
    """Writes the slices of one series as they are denoised, then publishes the folder."""

    def __init__(self, vol: CTVolume, out_root: Path, key: str, options: SinkOptions) -> None:
        self.vol = vol
        self.out_root = out_root
        self.key = key
        self.options = options
        self.staging: Path | None = None
        self.writer: DerivedSeriesWriter | None = None
        self.error: BaseException | None = None  # first failure; later batches are skipped
        self.write_s = 0.0  # writer-thread seconds spent on this series

    def _open(self) -> Path:
        if self.staging is None:
            self.staging = new_staging(self.out_root, self.key)
            if self.options.dicom:
                self.writer = DerivedSeriesWriter(
                    self.vol,
                    staging_parts(self.staging)[0],
                    series_description=self.options.series_description,
                    derivation_description=self.options.derivation_description,
                    uid_key=self.options.uid_key,
                    derived=self.options.derived,
                    transfer_syntax=self.options.transfer_syntax,
                    deidentify=self.options.deidentify,
                )
        return self.staging

    def write(self, start: int, stop: int) -> None:
        """Write slices ``start:stop`` (final model output); failures are kept for publish."""
        if self.error is not None:
            return
        t0 = time.perf_counter()
        try:
            self._open()
            hu, mask = self.vol.hu, self.vol.padding_mask
            for k in range(start, stop):
                if mask is not None:  # padding is restored by the writer: keep it out of the
                    hu[k][mask[k]] = AIR_HU  # clipped-voxel count (model output there)
                if self.writer is not None:
                    _verify(*self.writer.write_slice(k, hu[k]))
        except BaseException as exc:
            self.error = exc
        finally:
            self.write_s += time.perf_counter() - t0

    def publish(self, fingerprint: str, final: Path, record: Path) -> Completion:
        """After every slice was written: NIfTI, marker, atomic renames to ``final`` (DICOM)
        and ``record`` (marker + NIfTI)."""
        t0 = time.perf_counter()
        try:
            staging = self._open()
            if self.error is not None:
                raise self.error
            written = self.writer.finish() if self.writer is not None else None
            if written is not None and len(written.paths) != self.vol.shape[0]:
                raise RuntimeError(
                    f"writer produced {len(written.paths)} files for {self.vol.shape[0]} slices"
                )
            if self.options.nifti:
                record_part = staging_parts(staging)[1]
                record_part.mkdir(parents=True, exist_ok=True)
                write_nifti(self.vol, record_part / NIFTI_NAME)
            comp = Completion(
                fingerprint=fingerprint,
                series_key=self.key,
                derived_series_uid=written.series_instance_uid if written else "",
                n_slices=self.vol.shape[0],
                n_clipped=written.n_clipped if written else 0,
            )
            publish(staging, final, record, comp, self.out_root)
        except BaseException:
            self.discard()
            raise
        finally:
            self.write_s += time.perf_counter() - t0
        return comp

    def discard(self) -> None:
        """Remove the staging folder (after a failure of any stage)."""
        if self.staging is not None:
            discard(self.staging)


def _verify(path: Path, sop_uid: str) -> None:
    """A written file must read back with its SOP UID and the full pixel length (native), or
    with encapsulated pixel data (compressed: the writer checked it decodes bit-exactly)."""
    ds = pydicom.dcmread(path)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        ok = len(ds.PixelData) > 0
    else:
        ok = len(ds.PixelData) == int(ds.Rows) * int(ds.Columns) * 2
    if ds.SOPInstanceUID != sop_uid or not ok:
        raise DicomError("written file does not read back as written", path=path)


def write_nifti(vol: CTVolume, path: Path) -> None:
    """NIfTI (float32 HU) with the volume's geometry; padding gets the DICOM output's value."""
    import SimpleITK as sitk

    hu = vol.hu
    if vol.padding_mask is not None and vol.padding_mask.any():
        pad = vol.meta.get("PixelPaddingValue")
        s = vol.slices[0] if vol.slices else None
        fill = AIR_HU
        if pad is not None and s is not None:
            fill = stored_value_hu(pad, s.rescale_slope, s.rescale_intercept)
        hu = np.where(vol.padding_mask, np.float32(fill), hu)
    sitk.WriteImage(vol.with_hu(hu).to_sitk(), str(path), useCompression=True)
