"""Stored pixel values -> Hounsfield units, for any vendor.

* HU = stored x RescaleSlope + RescaleIntercept (intercept may be 0, slope may differ from 1);
  Enhanced CT keeps the rescale in the per-frame or shared functional groups; a Modality LUT
  Sequence, where present instead, is applied as a table.
* Stored values are masked to BitsStored and sign-extended when PixelRepresentation is 1
  (unused high bits may hold junk).
* Padding (outside the reconstruction circle) is given in *stored* values by
  PixelPaddingValue (+ PixelPaddingRangeLimit); some vendors pad without the tag and lossy
  compression blurs the exact value, so anything below :data:`PADDING_THRESHOLD_HU` is padding
  too. Padding becomes air (:data:`pipeline.intensity.AIR_HU`) and is kept in a mask.
* MONOCHROME1 only changes display; values are never inverted.
* The way back, HU -> stored integers for the writers (:func:`hu_to_stored`), lives here too:
  every slope/intercept conversion in the project goes through this module.

>>> float(stored_value_hu(24, 1.0, -1024.0))
-1000.0
>>> hu_to_stored(np.array([-1000.0, 0.4]), 1.0, -1024.0, 12, 0)[0].tolist()
[24, 1024]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from pipeline.errors import DicomError
from pipeline.intensity import AIR_HU
from pipeline.io.tags import value

MODALITY_LUT_TAG = BaseTag(0x00283000)
#: below this HU a voxel is padding, not tissue or air (air is -1000; noise in air at low dose
#: stays well above; vendors pad with -2000/-2048/-3024 HU)
PADDING_THRESHOLD_HU = -1500.0
#: above this a value is not a CT number (metal reaches ~3071 on 12-bit, 30710 on extended
#: scales); more means a wrong rescale or signedness
MAX_PLAUSIBLE_HU = 32000.0
#: a CT series holds air somewhere (outside the body, lungs, bowel): without any voxel at or
#: below this HU the rescale is almost certainly wrong (e.g. intercept 0 instead of -1024)
AIR_CHECK_HU = -500.0


@dataclass(frozen=True)
class Rescale:
    """How one plane's stored values map to HU."""

    slope: float = 1.0
    intercept: float = 0.0
    #: "functional-group", "rescale", "modality-lut" or "none" (stored values taken as HU)
    source: str = "rescale"
    #: (first stored value mapped, table values) for a Modality LUT Sequence
    lut: tuple[int, tuple[float, ...]] | None = None


def rescale_for_frame(ds: Dataset, groups: list[Dataset]) -> Rescale:
    """The rescale of one plane: functional groups first (Enhanced CT), then top-level tags."""
    for group in groups:
        seq = group.get("PixelValueTransformationSequence")
        if seq:
            item = seq[0]
            if item.get("RescaleSlope") is not None and item.get("RescaleIntercept") is not None:
                return Rescale(
                    float(item.RescaleSlope), float(item.RescaleIntercept), "functional-group"
                )
    slope, intercept = value(ds, "RescaleSlope"), value(ds, "RescaleIntercept")
    if slope not in (None, "") or intercept not in (None, ""):
        s = float(slope) if slope not in (None, "") else 1.0
        i = float(intercept) if intercept not in (None, "") else 0.0
        if not np.isfinite(s) or not np.isfinite(i) or s == 0:
            raise ValueError(f"RescaleSlope {slope!r} / RescaleIntercept {intercept!r} unusable")
        return Rescale(s, i, "rescale")
    lut_seq = ds.get("ModalityLUTSequence") if MODALITY_LUT_TAG in ds._dict else None
    if lut_seq:
        return Rescale(1.0, 0.0, "modality-lut", _lut_table(lut_seq[0], ds))
    return Rescale(1.0, 0.0, "none")


def _lut_table(item: Dataset, ds: Dataset) -> tuple[int, tuple[float, ...]]:
    """(first stored value mapped, table) of a Modality LUT Sequence item (PS3.3 C.11.1)."""
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    if int(value(ds, "PixelRepresentation") or 0) == 1 and first >= 2**15:
        first -= 2**16  # first mapped value is signed for signed pixel data
    data = item.LUTData
    if isinstance(data, bytes):
        table = np.frombuffer(data, dtype="<u2" if bits > 8 else "u1")
    else:
        table = np.atleast_1d(np.asarray(list(data) if not np.isscalar(data) else [data]))
    n = entries or 2**16
    if table.size < n:
        raise ValueError(f"Modality LUT holds {table.size} entries, descriptor says {n}")
    return first, tuple(float(v) for v in table[:n])


def padding_spec(ds: Dataset) -> tuple[int, int] | None:
    """(low, high) inclusive stored-value range marked as padding by the header, or None."""
    pad_value = value(ds, "PixelPaddingValue")
    if pad_value is None:
        return None
    pr = int(value(ds, "PixelRepresentation") or 0)
    ba = int(value(ds, "BitsAllocated") or 16)
    bs = int(value(ds, "BitsStored") or ba)
    pad = _as_stored(_int(pad_value, "PixelPaddingValue"), pr, ba, bs)
    limit = value(ds, "PixelPaddingRangeLimit")
    if limit is None:
        return pad, pad
    lim = _as_stored(_int(limit, "PixelPaddingRangeLimit"), pr, ba, bs)
    return (pad, lim) if pad <= lim else (lim, pad)


def _int(found: Any, name: str) -> int:
    if isinstance(found, bytes):  # ambiguous US/SS kept raw by pydicom
        if len(found) not in (2, 4):
            raise ValueError(f"{name} has {len(found)} bytes")
        return int.from_bytes(found[:2], "little")
    if isinstance(found, (list, tuple)):
        found = found[0]
    return int(found)


def _as_stored(raw: int, pixel_representation: int, bits_allocated: int, bits_stored: int) -> int:
    """Interpret a header value in the signedness of the pixel data (US vs SS ambiguity)."""
    if pixel_representation == 1:
        if raw >= 2 ** (bits_allocated - 1):  # written/read as unsigned
            raw -= 2**bits_allocated
        if not -(2 ** (bits_stored - 1)) <= raw < 2 ** (bits_stored - 1):
            raw = int(sign_extend(np.array([raw], dtype=np.int64), bits_stored)[0])
    elif raw < 0:
        raw += 2**bits_allocated
    return raw


def sign_extend(values: np.ndarray, bits_stored: int) -> np.ndarray:
    """Keep the low ``bits_stored`` bits and sign-extend them (two's complement)."""
    v = values.astype(np.int64) & ((1 << bits_stored) - 1)
    sign = 1 << (bits_stored - 1)
    return (v ^ sign) - sign


def unpack_native(raw: np.ndarray, bits_stored: int, pixel_representation: int) -> np.ndarray:
    """Mask junk high bits of unsigned raw words and apply the signedness (any shape)."""
    if raw.dtype.kind != "u":
        raise TypeError(f"unpack_native expects unsigned words, found {raw.dtype}")
    raw = raw.astype(raw.dtype.newbyteorder("="), copy=False)
    bits = raw.dtype.itemsize * 8
    if pixel_representation == 0:
        if bits_stored < bits:
            return raw & raw.dtype.type((1 << bits_stored) - 1)
        return raw
    signed = raw.view(np.dtype(f"i{raw.dtype.itemsize}"))
    if bits_stored < bits:
        shift = bits - bits_stored
        return (signed << shift) >> shift  # arithmetic shift sign-extends
    return signed


def stored_to_hu(stored: np.ndarray, rescale: Rescale, out: np.ndarray | None = None) -> np.ndarray:
    """HU (float32) of stored values under ``rescale`` (written into ``out`` when given)."""
    if out is None:
        out = np.empty(stored.shape, dtype=np.float32)
    if rescale.lut is not None:
        first, table = rescale.lut
        lut = np.asarray(table, dtype=np.float32)
        idx = np.clip(stored.astype(np.int64) - first, 0, len(lut) - 1)
        out[...] = lut[idx]
        return out
    # one fused pass where possible (float32 scalars keep the arithmetic in float32)
    if rescale.slope != 1.0:
        np.multiply(stored, np.float32(rescale.slope), out=out)
        if rescale.intercept != 0.0:
            out += np.float32(rescale.intercept)
    else:
        np.add(stored, np.float32(rescale.intercept), out=out)
    return out


def stored_value_hu(stored: float, slope: float, intercept: float) -> float:
    """One stored value (e.g. PixelPaddingValue) -> HU: ``stored * slope + intercept`` (float64)."""
    return float(stored) * slope + intercept


def stored_range(bits_stored: int, pixel_representation: int) -> tuple[int, int]:
    """Inclusive stored-value range (PixelRepresentation 0 unsigned, 1 signed)."""
    if not 1 <= bits_stored <= 16:
        raise DicomError(f"BitsStored must be 1..16 for a 16-bit CT writer, found {bits_stored}")
    if pixel_representation == 1:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def hu_to_stored(
    hu: np.ndarray,
    slope: float,
    intercept: float,
    bits_stored: int,
    pixel_representation: int,
    ignore: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """HU -> rounded stored integers clipped to the storable range, and the clip count.

    Voxels where ``ignore`` is True (padding, overwritten afterwards) are not counted.
    """
    if slope == 0 or not np.isfinite(slope) or not np.isfinite(intercept):
        raise DicomError(f"unusable rescale slope/intercept {slope}/{intercept}")
    raw = np.rint((np.asarray(hu, dtype=np.float64) - intercept) / slope)
    lo, hi = stored_range(bits_stored, pixel_representation)
    out_of_range = (raw < lo) | (raw > hi) | ~np.isfinite(raw)
    if ignore is not None:
        out_of_range &= ~np.asarray(ignore, dtype=bool)
    n_clipped = int(np.count_nonzero(out_of_range))
    raw = np.clip(np.nan_to_num(raw, nan=(0 - intercept) / slope), lo, hi)
    dtype = np.int16 if pixel_representation == 1 else np.uint16
    return raw.astype(dtype), n_clipped


def padding_mask(
    stored: np.ndarray,
    rescale: Rescale,
    spec: tuple[int, int] | None,
    threshold_hu: float = PADDING_THRESHOLD_HU,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """True where a voxel is padding: tagged stored range, or HU below the threshold.

    Evaluated on the stored integers (the HU threshold mapped through the rescale), so it
    costs one integer comparison per voxel.
    """
    if rescale.lut is not None:
        mask = np.less(stored_to_hu(stored, rescale), np.float32(threshold_hu), out=out)
    else:
        limit = (threshold_hu - rescale.intercept) / rescale.slope
        if rescale.slope > 0:  # HU < t  <=>  stored < limit  <=>  stored < ceil(limit)
            mask = _compare(stored, int(np.ceil(limit)), np.less, out)
        else:  # HU < t  <=>  stored > limit  <=>  stored > floor(limit)
            mask = _compare(stored, int(np.floor(limit)), np.greater, out)
        if spec is not None and rescale.slope > 0 and spec[1] < limit:
            return mask  # the tagged padding range is already below the threshold
    if spec is not None:
        low, high = spec
        mask |= (stored >= low) & (stored <= high) if low != high else stored == low
    return mask


def _compare(stored: np.ndarray, bound: int, op: np.ufunc, out: np.ndarray | None) -> np.ndarray:
    """``op(stored, bound)`` without promoting the array (bound clipped to its dtype)."""
    info = np.iinfo(stored.dtype)
    clipped = min(max(bound, int(info.min)), int(info.max))
    if clipped != bound:  # bound outside the dtype: the answer is the same for every voxel
        fill = (op is np.less) == (bound > info.max)
        if out is None:
            return np.full(stored.shape, fill, dtype=bool)
        out[...] = fill
        return out
    return op(stored, stored.dtype.type(clipped), out=out)


@dataclass
class HuStats:
    """What the plausibility check needs from a block of converted planes."""

    max_hu: float  # NaN/inf when any value is non-finite
    has_air: bool  # any non-padding voxel <= AIR_CHECK_HU
    has_tissue: bool  # any non-padding voxel at all

    @staticmethod
    def of(hu: np.ndarray, mask: np.ndarray) -> HuStats:
        if hu.size == 0:
            return HuStats(-np.inf, False, False)
        top = float(np.max(hu))  # padding was set to AIR_HU: it never raises the max
        tissue = ~mask
        return HuStats(top, bool(np.any((hu <= AIR_CHECK_HU) & tissue)), bool(np.any(tissue)))


def plausibility_problem(
    stats: list[HuStats], rescales: set[Rescale], pixel_representation: int, bits_stored: int
) -> str:
    """Why converted HU are not plausible CT numbers ("" when they are).

    Checks: all finite, nothing above :data:`MAX_PLAUSIBLE_HU`, some tissue above the padding
    threshold, and air (<= :data:`AIR_CHECK_HU`) somewhere in the series.
    """
    rescale = ", ".join(
        sorted(f"slope {r.slope:g} / intercept {r.intercept:g}" for r in rescales)[:3]
    )
    top = max((s.max_hu for s in stats), default=-np.inf)
    if any(not np.isfinite(s.max_hu) and s.max_hu != -np.inf for s in stats):
        return f"HU not finite after rescale ({rescale}): RescaleSlope/Intercept unusable"
    if top > MAX_PLAUSIBLE_HU:
        hint = ""
        if pixel_representation == 0 and bits_stored >= 16:
            hint = (
                "; PixelRepresentation 0 (unsigned): two's complement (signed) data declared "
                "unsigned?"
            )
        return (
            f"HU up to {top:.6g} beyond the physical range of CT (<= {MAX_PLAUSIBLE_HU:.0f} HU "
            f"even on extended scales) with {rescale}{hint}"
        )
    if not any(s.has_tissue for s in stats):
        return (
            f"every voxel is below {PADDING_THRESHOLD_HU:.0f} HU (padding) with {rescale}: no "
            "image, or a wrong rescale"
        )
    if not any(s.has_air for s in stats):
        return (
            f"no air anywhere in the series (no voxel <= {AIR_CHECK_HU:.0f} HU outside padding; "
            f"CT air is {AIR_HU:.0f} HU) with {rescale}: rescale or signedness wrong?"
        )
    return ""
