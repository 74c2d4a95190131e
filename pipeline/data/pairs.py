"""Paired low/full-dose series: what a pair is, how it is found, and how it is validated.

A :class:`PairSpec` names two series (folders or files) of one patient; :func:`load_pair` reads
both and returns a :class:`Pair` only when they describe the *same* voxels: identical in-plane
size, spacing, orientation and frame of reference (where both carry one), the same in-plane
origin, and slices that match one to one by position along the slice normal. Anything else
raises :class:`~pipeline.errors.DatasetError` with every mismatch listed -- a misaligned pair
would silently teach a denoiser to blur, so it is never returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.data.layouts import scan_pairs
from pipeline.data.spec import PairSpec
from pipeline.errors import DatasetError, LdctError
from pipeline.io.volume import CTVolume

log = logging.getLogger(__name__)

#: Reads one series (a folder holding one CT series, or a file) into a volume.
VolumeReader = Callable[[Path], CTVolume]

#: Default tolerance (mm) for slice positions and in-plane origins to count as equal.
POSITION_TOL_MM = 0.1
_SPACING_RTOL = 1e-4
_DIRECTION_ATOL = 1e-4


@dataclass
class Pair:
    """A validated pair: ``low.hu[k]`` and ``full.hu[k]`` show the same slice for every k."""

    spec: PairSpec
    low: CTVolume
    full: CTVolume
    #: slice positions (mm) along the slice normal, shared by both volumes, shape (Z,)
    positions_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def patient(self) -> str:
        return self.spec.patient

    @property
    def n_slices(self) -> int:
        return int(self.low.hu.shape[0])


def slice_positions_mm(vol: CTVolume) -> np.ndarray:
    """Position of every slice along the volume's normal (mm), from per-slice headers if present."""
    normal = vol.direction[:, 2]
    if vol.slices:
        pos = np.array([s.position_mm for s in vol.slices], dtype=np.float64)
    else:
        k = np.arange(vol.shape[0], dtype=np.float64)
        pos = np.asarray(vol.origin_mm, dtype=np.float64)[None, :] + (
            k[:, None] * vol.spacing_mm[0] * normal[None, :]
        )
    return pos @ normal


def _geometry_problems(
    low: CTVolume, full: CTVolume, tol_mm: float, same_frame: bool = True
) -> list[str]:
    """Every in-plane/identity mismatch between two volumes (empty list when compatible)."""
    problems: list[str] = []
    if low.shape[1:] != full.shape[1:]:
        problems.append(
            f"image size differs: low {low.shape[1:]} vs full {full.shape[1:]} (rows, cols)"
        )
    ls, fs = np.asarray(low.spacing_mm), np.asarray(full.spacing_mm)
    if not np.allclose(ls[1:], fs[1:], rtol=_SPACING_RTOL, atol=1e-6):
        problems.append(
            f"pixel spacing differs: low {tuple(ls[1:].round(5))} vs full "
            f"{tuple(fs[1:].round(5))} mm"
        )
    if not np.allclose(ls[0], fs[0], rtol=_SPACING_RTOL, atol=1e-3):
        problems.append(f"slice spacing differs: low {ls[0]:.4f} vs full {fs[0]:.4f} mm")
    if not np.allclose(low.direction, full.direction, atol=_DIRECTION_ATOL):
        problems.append(
            "orientation differs: low direction "
            f"{low.direction.round(4).tolist()} vs full {full.direction.round(4).tolist()}"
        )
    for tag in ("FrameOfReferenceUID", "PatientID"):
        a, b = low.meta.get(tag), full.meta.get(tag)
        if a and b and str(a) != str(b):
            if tag == "FrameOfReferenceUID" and not same_frame:
                continue
            hint = (
                " (if the series are known to share one geometry, pass "
                "--ignore-frame-of-reference; in Python require_same_frame_of_reference=False)"
                if tag == "FrameOfReferenceUID"
                else ""
            )
            problems.append(f"{tag} differs: low {a} vs full {b}{hint}")
    # in-plane origin: project the origin offset on the row and column directions
    d = np.asarray(low.origin_mm, dtype=np.float64) - np.asarray(full.origin_mm, dtype=np.float64)
    inplane = np.abs(d @ full.direction[:, :2])
    if np.any(inplane > tol_mm):
        problems.append(
            f"in-plane origin differs by {inplane.round(3).tolist()} mm (row, col) > {tol_mm} mm"
        )
    return problems


def match_slices(
    low_pos_mm: np.ndarray, full_pos_mm: np.ndarray, tol_mm: float = POSITION_TOL_MM
) -> tuple[np.ndarray, list[str]]:
    """Map every low-dose slice to the full-dose slice at the same position.

    Returns ``(full_index_for_low, problems)``; problems describe unmatched or duplicate slices
    (unequal coverage). ``full_index_for_low[k]`` is -1 where low slice k has no partner.
    """
    problems: list[str] = []
    if len(full_pos_mm) == 0 or len(low_pos_mm) == 0:
        mapping = np.full(len(low_pos_mm), -1, dtype=np.int64)
    else:
        order = np.argsort(full_pos_mm, kind="stable")
        sorted_full = full_pos_mm[order]
        right = np.clip(np.searchsorted(sorted_full, low_pos_mm), 0, len(sorted_full) - 1)
        left = np.clip(right - 1, 0, len(sorted_full) - 1)
        d_left = np.abs(low_pos_mm - sorted_full[left])
        d_right = np.abs(low_pos_mm - sorted_full[right])
        cand = np.where(d_left <= d_right, left, right)
        dist = np.minimum(d_left, d_right)
        mapping = np.where(dist <= tol_mm, order[cand], -1).astype(np.int64)
    unmatched_low = np.flatnonzero(mapping < 0)
    used = mapping[mapping >= 0]
    unmatched_full = np.setdiff1d(np.arange(len(full_pos_mm)), used)
    if len(np.unique(used)) != len(used):
        problems.append("several low-dose slices map to one full-dose slice (duplicate positions)")

    def _rng(p: np.ndarray) -> str:
        return f"{len(p)} slices, z {p.min():.2f}..{p.max():.2f} mm" if len(p) else "0 slices"

    if len(unmatched_low) or len(unmatched_full):
        detail = []
        if len(unmatched_low):
            detail.append(
                f"{len(unmatched_low)} low-dose slice(s) without a full-dose partner within "
                f"{tol_mm} mm (first at z={low_pos_mm[unmatched_low[0]]:.2f} mm)"
            )
        if len(unmatched_full):
            detail.append(
                f"{len(unmatched_full)} full-dose slice(s) without a low-dose partner "
                f"(first at z={full_pos_mm[unmatched_full[0]]:.2f} mm)"
            )
        problems.append(
            f"coverage differs: low {_rng(low_pos_mm)}, full {_rng(full_pos_mm)}; "
            + "; ".join(detail)
        )
    return mapping, problems


def pair_volumes(
    spec: PairSpec,
    low: CTVolume,
    full: CTVolume,
    *,
    tol_mm: float = POSITION_TOL_MM,
    require_same_frame_of_reference: bool = True,
) -> Pair:
    """Validate two already-read volumes as a pair; raise DatasetError listing every mismatch."""
    problems = _geometry_problems(low, full, tol_mm, require_same_frame_of_reference)
    low_pos, full_pos = slice_positions_mm(low), slice_positions_mm(full)
    mapping, slice_problems = match_slices(low_pos, full_pos, tol_mm)
    problems += slice_problems
    if problems:
        raise DatasetError(
            f"pair {spec.name!r} refused ({spec.low} vs {spec.full}):\n  - "
            + "\n  - ".join(problems)
        )
    if not np.array_equal(mapping, np.arange(len(mapping))):
        full = _reindex(full, mapping)
    return Pair(spec=spec, low=low, full=full, positions_mm=low_pos)


def _reindex(vol: CTVolume, order: np.ndarray) -> CTVolume:
    """The volume with its slices taken in ``order`` (used to align full to low)."""
    from dataclasses import replace

    return replace(
        vol,
        hu=np.ascontiguousarray(vol.hu[order]),
        padding_mask=None if vol.padding_mask is None else vol.padding_mask[order],
        slices=[vol.slices[i] for i in order] if vol.slices else [],
    )


def default_reader() -> VolumeReader:
    """The project's DICOM series reader (``pipeline.io.read.read_volume``)."""
    try:
        from pipeline.io.read import read_volume
    except ImportError as exc:  # pragma: no cover - only before the io package exists
        raise DatasetError("DICOM reader pipeline.io.read is not available") from exc
    return read_volume


def load_pair(
    spec: PairSpec,
    *,
    reader: VolumeReader | None = None,
    tol_mm: float = POSITION_TOL_MM,
    require_same_frame_of_reference: bool = True,
) -> Pair:
    """Read both series of ``spec`` and validate them as a pair (see :func:`pair_volumes`)."""
    read = reader or default_reader()
    vols: list[CTVolume] = []
    for role, path in (("low", spec.low), ("full", spec.full)):
        try:
            vols.append(read(path))
        except DatasetError:
            raise
        except LdctError as exc:
            raise DatasetError(
                f"pair {spec.name!r}: cannot read {role}-dose series: {exc}"
            ) from exc
    return pair_volumes(
        spec,
        vols[0],
        vols[1],
        tol_mm=tol_mm,
        require_same_frame_of_reference=require_same_frame_of_reference,
    )


def discover_pairs(source: str | Path, *, strict: bool = True) -> list[PairSpec]:
    """Find all pairs under a dataset root (any known layout) or in a manifest file.

    With ``strict`` (default) any problem (a patient with only one dose, an ambiguous series)
    raises DatasetError listing all of them; otherwise problems are logged and skipped.
    """
    found = scan_pairs(Path(source))
    if found.problems and strict:
        raise DatasetError(
            f"{source}: {len(found.problems)} problem(s) while pairing (fix them, or skip those "
            "patients with data.strict_pairing: false):\n  - " + "\n  - ".join(found.problems)
        )
    for msg in found.problems:
        log.warning("skipped: %s", msg)
    if not found.pairs:
        raise DatasetError(f"{source}: no low/full-dose pairs found ({found.hint})")
    return found.pairs
