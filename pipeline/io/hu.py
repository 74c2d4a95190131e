"""Stored pixel values -> Hounsfield units, for any vendor.

* HU = stored x RescaleSlope + RescaleIntercept (intercept may be 0, slope may differ from 1);
  Enhanced CT keeps the rescale in the per-frame or shared functional groups; a Modality LUT
  Sequence, where present instead, is applied as a table.
* Stored values are masked to BitsStored and sign-extended when PixelRepresentation is 1
  (unused high bits may hold junk).
* Padding (outside the reconstruction circle) is given in *stored* values by
  PixelPaddingValue (+ PixelPaddingRangeLimit); some vendors pad without the tag and lossy
  compression blurs the exact value, so anything below :data:`PADDING_THRESHOLD_HU` is padding
  too. Padding becomes air (:data:`PADDING_HU`) and is kept in a mask.
* MONOCHROME1 only changes display; values are never inverted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

#: HU written where the source holds padding
PADDING_HU = -1000.0
#: below this HU a voxel is padding, not tissue or air (air is -1000; noise in air at low dose
#: stays well above; vendors pad with -2000/-2048/-3024 HU)
PADDING_THRESHOLD_HU = -1500.0


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
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope not in (None, "") or intercept not in (None, ""):
        s = float(slope) if slope not in (None, "") else 1.0
        i = float(intercept) if intercept not in (None, "") else 0.0
        if not np.isfinite(s) or not np.isfinite(i) or s == 0:
            raise ValueError(f"RescaleSlope {slope!r} / RescaleIntercept {intercept!r} unusable")
        return Rescale(s, i, "rescale")
    lut_seq = ds.get("ModalityLUTSequence")
    if lut_seq:
        item = lut_seq[0]
        desc = [int(v) for v in item.LUTDescriptor]
        first = desc[1]
        data = item.LUTData
        values = tuple(float(v) for v in (data if isinstance(data, (list, tuple)) else [data]))
        return Rescale(1.0, 0.0, "modality-lut", (first, values))
    return Rescale(1.0, 0.0, "none")


def padding_spec(ds: Dataset) -> tuple[int, int] | None:
    """(low, high) inclusive stored-value range marked as padding by the header, or None."""
    value = ds.get("PixelPaddingValue")
    if value is None or value == "":
        return None
    pr = int(ds.get("PixelRepresentation", 0) or 0)
    ba = int(ds.get("BitsAllocated", 16) or 16)
    bs = int(ds.get("BitsStored", ba) or ba)
    pad = _as_stored(_int(value, "PixelPaddingValue"), pr, ba, bs)
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None or limit == "":
        return pad, pad
    lim = _as_stored(_int(limit, "PixelPaddingRangeLimit"), pr, ba, bs)
    return (pad, lim) if pad <= lim else (lim, pad)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bytes):  # ambiguous US/SS kept raw by pydicom
        if len(value) not in (2, 4):
            raise ValueError(f"{name} has {len(value)} bytes")
        return int.from_bytes(value[:2], "little")
    if isinstance(value, (list, tuple)):
        value = value[0]
    return int(value)


def _as_stored(value: int, pixel_representation: int, bits_allocated: int, bits_stored: int) -> int:
    """Interpret a header value in the signedness of the pixel data (US vs SS ambiguity)."""
    if pixel_representation == 1:
        if value >= 2 ** (bits_allocated - 1):  # written/read as unsigned
            value -= 2**bits_allocated
        if not -(2 ** (bits_stored - 1)) <= value < 2 ** (bits_stored - 1):
            value = int(sign_extend(np.array([value], dtype=np.int64), bits_stored)[0])
    elif value < 0:
        value += 2**bits_allocated
    return value


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


def stored_to_hu(stored: np.ndarray, rescale: Rescale) -> np.ndarray:
    """HU (float32) of stored values under ``rescale``."""
    if rescale.lut is not None:
        first, table = rescale.lut
        lut = np.asarray(table, dtype=np.float32)
        idx = np.clip(stored.astype(np.int64) - first, 0, len(lut) - 1)
        return lut[idx]
    hu = stored.astype(np.float32)
    if rescale.slope != 1.0:
        hu *= np.float32(rescale.slope)
    if rescale.intercept != 0.0:
        hu += np.float32(rescale.intercept)
    return hu


def padding_mask(
    stored: np.ndarray,
    hu: np.ndarray,
    spec: tuple[int, int] | None,
    threshold_hu: float = PADDING_THRESHOLD_HU,
) -> np.ndarray:
    """True where a voxel is padding: tagged stored range, or HU below the threshold."""
    mask = hu < threshold_hu
    if spec is not None:
        low, high = spec
        mask |= (stored >= low) & (stored <= high) if low != high else stored == low
    return mask
