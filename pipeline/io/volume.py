"""The in-memory CT volume every stage exchanges: HU (float32, z/y/x) plus geometry and headers.

Geometry follows DICOM/ITK (LPS patient coordinates, millimetres):

* ``origin_mm`` is ImagePositionPatient of the first slice (after sorting along the normal);
* ``direction`` is a 3x3 matrix whose *columns* are the row direction (x, along a row),
  the column direction (y, down the rows) and the slice normal (z) -- SimpleITK's convention;
* ``spacing_mm`` is (z, y, x) to match the array axes; z is the (regular) slice spacing.

The world position of voxel index (k, j, i) is ``origin + direction @ ([i, j, k] * [sx, sy, sz])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import GeometryError

if TYPE_CHECKING:
    import SimpleITK as sitk
    from pydicom.dataset import Dataset


@dataclass(frozen=True)
class SliceInfo:
    """One source slice: where it came from and how its stored values map to HU."""

    path: Path
    sop_instance_uid: str
    position_mm: tuple[float, float, float]  # ImagePositionPatient (LPS)
    rescale_slope: float
    rescale_intercept: float
    #: header without pixel data (what a writer copies into a derived slice); may be None
    header: Dataset | None = None
    #: frame number (0-based) for Enhanced multi-frame CT, else None
    frame: int | None = None


@dataclass
class CTVolume:
    """A CT series as HU voxels with geometry, padding mask and per-slice provenance."""

    hu: np.ndarray  # (Z, Y, X) float32, Hounsfield units
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    origin_mm: tuple[float, float, float]  # LPS position of voxel (0, 0, 0)
    direction: np.ndarray  # (3, 3) float64, columns = row dir, column dir, slice normal
    #: True where the source stored padding (outside the reconstruction circle); HU there is air
    padding_mask: np.ndarray | None = None
    slices: list[SliceInfo] = field(default_factory=list)
    #: identifiers and descriptive tags (PatientID, StudyInstanceUID, SeriesInstanceUID,
    #: FrameOfReferenceUID, SeriesDescription, Modality, BitsStored, PixelRepresentation, ...)
    meta: dict[str, Any] = field(default_factory=dict)
    #: non-fatal problems found while reading (irregular spacing, tilt, ...)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.hu.ndim != 3:
            raise ValueError(f"CTVolume.hu must be 3-D (Z, Y, X), found shape {self.hu.shape}")
        if self.hu.dtype != np.float32:
            self.hu = self.hu.astype(np.float32)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if self.padding_mask is not None and self.padding_mask.shape != self.hu.shape:
            raise ValueError(
                f"padding_mask shape {self.padding_mask.shape} != hu shape {self.hu.shape}"
            )
        if self.slices and len(self.slices) != self.hu.shape[0]:
            raise ValueError(f"{len(self.slices)} slice records for {self.hu.shape[0]} slices")

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.hu.shape
        return int(z), int(y), int(x)

    @property
    def affine(self) -> np.ndarray:
        """4x4 index (i, j, k) -> LPS millimetre matrix."""
        sz, sy, sx = self.spacing_mm
        a = np.eye(4)
        a[:3, :3] = self.direction @ np.diag([sx, sy, sz])
        a[:3, 3] = self.origin_mm
        return a

    def with_hu(self, hu: np.ndarray) -> CTVolume:
        """A copy with new voxel values (same geometry, headers and padding mask)."""
        if hu.shape != self.hu.shape:
            raise ValueError(f"with_hu: shape {hu.shape} != volume shape {self.hu.shape}")
        return replace(self, hu=np.ascontiguousarray(hu, dtype=np.float32))

    def to_sitk(self) -> sitk.Image:
        """SimpleITK image with the same geometry (x, y, z index order inside ITK)."""
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(self.hu)
        sz, sy, sx = self.spacing_mm
        img.SetSpacing((float(sx), float(sy), float(sz)))
        img.SetOrigin(tuple(float(v) for v in self.origin_mm))
        img.SetDirection(tuple(float(v) for v in self.direction.reshape(-1)))
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, **kwargs: Any) -> CTVolume:
        """Build a volume from a 3-D SimpleITK image (values taken as HU)."""
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise GeometryError(f"expected a 3-D image, found {image.GetDimension()}-D")
        hu = sitk.GetArrayFromImage(image).astype(np.float32)
        sx, sy, sz = image.GetSpacing()
        return cls(
            hu=hu,
            spacing_mm=(float(sz), float(sy), float(sx)),
            origin_mm=tuple(float(v) for v in image.GetOrigin()),  # type: ignore[arg-type]
            direction=np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3),
            **kwargs,
        )
