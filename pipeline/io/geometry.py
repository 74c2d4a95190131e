"""Slice order and spacing from ImagePositionPatient, with irregularities reported, never hidden.

Slices are sorted by their position projected on the slice normal (row cosine x column
cosine), never by InstanceNumber or file name. The z spacing is the most frequent step; steps that
differ from it are reported as irregular spacing or missing slices (gaps); positions that do
not advance along the normal are reported as gantry tilt. SimpleITK and MONAI silently average
such series; here the warning travels with the volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import GeometryError
from pipeline.io.header import FrameRef
from pipeline.io.tags import value

#: relative deviation of a step from the typical step that counts as irregular
SPACING_RTOL = 0.01
#: positions closer than this along the normal are the same slice (mm)
DUPLICATE_TOL_MM = 1e-3
#: angle between the normal and the slice progression above which we report tilt (degrees)
TILT_TOL_DEG = 0.05


@dataclass
class SliceGeometry:
    """Sorted order and regular-grid description of a stack of planes."""

    order: list[int]  # indices into the input frames, sorted along the normal
    direction: np.ndarray  # (3, 3), columns = row, column, normal
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    positions_mm: np.ndarray  # sorted positions along the normal
    warnings: list[str] = field(default_factory=list)


def direction_matrix(orientation: Sequence[float]) -> np.ndarray:
    """3x3 matrix with columns row cosine, column cosine, normal (row x column)."""
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:6], dtype=np.float64)
    row /= np.linalg.norm(row)
    col /= np.linalg.norm(col)
    return np.stack([row, col, np.cross(row, col)], axis=1)


def sort_slices(
    frames: Sequence[FrameRef], default_thickness_mm: float | None = None
) -> SliceGeometry:
    """Sort ``frames`` along the normal and describe the grid; raises on true contradictions."""
    if not frames:
        raise GeometryError("no slices to sort")
    direction = direction_matrix(frames[0].orientation)
    normal = direction[:, 2]
    for f in frames[1:]:
        other = direction_matrix(f.orientation)[:, 2]
        if float(normal @ other) < np.cos(np.deg2rad(0.5)):
            raise GeometryError(
                f"slice orientations differ: {frames[0].path.name} vs {f.path.name}",
                path=f.path,
            )
    ipp = np.array([f.position_mm for f in frames], dtype=np.float64)
    dist = ipp @ normal
    order = sorted(
        range(len(frames)), key=lambda i: (dist[i], str(frames[i].path), frames[i].frame or 0)
    )
    dist_sorted = dist[order]
    ipp_sorted = ipp[order]
    warnings: list[str] = []
    _check_duplicates(frames, order, dist_sorted)
    ps_y, ps_x = frames[order[0]].pixel_spacing_mm
    if len(order) == 1:
        dz = default_thickness_mm if default_thickness_mm and default_thickness_mm > 0 else 1.0
        if not default_thickness_mm:
            warnings.append("single slice without SliceThickness: z spacing set to 1 mm")
    else:
        steps = np.diff(dist_sorted)
        dz = _typical_step(steps)
        warnings.extend(_spacing_warnings(steps, dz, dist_sorted))
        tilt = _tilt_deg(ipp_sorted, normal)
        if tilt > TILT_TOL_DEG:
            warnings.append(
                f"gantry tilt: slices advance {tilt:.2f} deg off the slice normal "
                "(volume grid is sheared; positions kept per slice)"
            )
    return SliceGeometry(
        order=order,
        direction=direction,
        origin_mm=tuple(float(v) for v in ipp_sorted[0]),  # type: ignore[arg-type]
        spacing_mm=(dz, float(ps_y), float(ps_x)),
        positions_mm=dist_sorted,
        warnings=warnings,
    )


def header_warnings(frames: Sequence[FrameRef]) -> list[str]:
    """Series-level header inconsistencies worth a warning (not fatal)."""
    out: list[str] = []
    headers = list({id(f.header): f.header for f in frames}.values())
    frames_of_ref = {str(value(h, "FrameOfReferenceUID") or "") for h in headers}
    if len(frames_of_ref) > 1:
        out.append(
            f"files disagree on FrameOfReferenceUID ({len(frames_of_ref)} values): positions "
            "may not share one coordinate system"
        )
    tilts = {float(value(h, "GantryDetectorTilt") or 0.0) for h in headers}
    if any(abs(t) > TILT_TOL_DEG for t in tilts):
        out.append(f"GantryDetectorTilt {sorted(tilts)} deg in the headers")
    return out


def _typical_step(steps: np.ndarray) -> float:
    """The most frequent step (ties: the smaller), refined as the median of steps near it."""
    values, counts = np.unique(np.round(steps, 2), return_counts=True)
    mode = float(values[np.flatnonzero(counts == counts.max())[0]])
    near = steps[np.abs(steps - mode) <= max(0.01, SPACING_RTOL * mode)]
    return float(np.median(near))


def _check_duplicates(frames: Sequence[FrameRef], order: list[int], dist: np.ndarray) -> None:
    same = np.flatnonzero(np.diff(dist) < DUPLICATE_TOL_MM)
    if same.size:
        i = int(same[0])
        a, b = frames[order[i]], frames[order[i + 1]]
        raise GeometryError(
            f"{same.size} slice position(s) hold more than one image, e.g. {dist[i]:.3f} mm: "
            f"{a.path.name} and {b.path.name} (several acquisitions or phases in one series?)",
            path=b.path,
        )


def _spacing_warnings(steps: np.ndarray, dz: float, dist: np.ndarray) -> list[str]:
    out: list[str] = []
    irregular = np.abs(steps - dz) > SPACING_RTOL * dz
    if not irregular.any():
        return out
    ratio = steps / dz
    gaps = irregular & (np.abs(ratio - np.round(ratio)) <= SPACING_RTOL) & (np.round(ratio) >= 2)
    if gaps.any():
        missing = int(np.sum(np.round(ratio[gaps]) - 1))
        where = ", ".join(f"{dist[i]:.2f}->{dist[i + 1]:.2f} mm" for i in np.flatnonzero(gaps)[:5])
        out.append(f"missing slices: {missing} slice(s) absent at {where} (spacing {dz:.3f} mm)")
    other = irregular & ~gaps
    if other.any():
        out.append(
            f"irregular slice spacing: steps from {steps.min():.3f} to {steps.max():.3f} mm, "
            f"typical {dz:.3f} mm ({int(other.sum())} irregular step(s)); the volume grid uses "
            "the typical step"
        )
    return out


def _tilt_deg(ipp: np.ndarray, normal: np.ndarray) -> float:
    travel = ipp[-1] - ipp[0]
    length = float(np.linalg.norm(travel))
    if length == 0:
        return 0.0
    cos = abs(float(travel @ normal)) / length
    return float(np.degrees(np.arccos(min(1.0, cos))))
