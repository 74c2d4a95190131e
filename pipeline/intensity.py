"""The one home of intensity conventions: HU <-> model range, named windows, the air value.

A core module (beside :mod:`pipeline.config` and :mod:`pipeline.errors`): every stage imports
its windows and air constant from here, and HU <-> stored-value conversion lives in
:mod:`pipeline.io.hu` only.

* The **model range** maps a wide HU interval (default [-1024, 3071], 4096 HU) affinely to [0, 1].
  It is not clipped, so :func:`hu_to_model` and :func:`model_to_hu` are exact inverses and lung,
  bone and metal survive the round trip. Models read and write this range.
* A **window** (width/level) maps [level - width/2, level + width/2] to [0, 1] *with* clipping.
  Windows are for loss views, metrics and display, never for model input. The inverse is exact
  inside the window only (clipped values are gone).

All functions accept NumPy arrays or torch tensors of any shape and return the same type; the
module itself does not import torch (the DICOM reader uses :data:`AIR_HU` without it).

>>> get_window("soft_tissue").lo_hu, get_window("soft_tissue").hi_hu
(-160.0, 240.0)
>>> float(model_to_hu(hu_to_model(-1000.0)))
-1000.0
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    import torch

ArrayT = TypeVar("ArrayT", "np.ndarray", "torch.Tensor")

#: Default HU interval mapped to the model's [0, 1] range.
MODEL_RANGE_HU: tuple[float, float] = (-1024.0, 3071.0)
#: HU of air, by definition of the Hounsfield scale: padding is read as air, phantoms and
#: simulations fill the space outside the body with it.
AIR_HU = -1000.0


@dataclass(frozen=True)
class Window:
    """A HU window given by width and level (centre), as on a CT console."""

    name: str
    width_hu: float
    level_hu: float

    def __post_init__(self) -> None:
        if not self.width_hu > 0:
            raise ConfigError(f"window {self.name!r}: width must be > 0, found {self.width_hu}")

    @property
    def lo_hu(self) -> float:
        return self.level_hu - self.width_hu / 2.0

    @property
    def hi_hu(self) -> float:
        return self.level_hu + self.width_hu / 2.0

    @classmethod
    def from_range(cls, name: str, lo_hu: float, hi_hu: float) -> Window:
        return cls(name, hi_hu - lo_hu, (hi_hu + lo_hu) / 2.0)


#: Named windows (width, level) in HU. ``soft_tissue`` = [-160, 240], the RED-CNN/CTformer range;
#: ``ldctbench_*`` are the per-anatomy windows of LDCT-Bench's published tables (the metric
#: profiles ``ldctbench-abdomen``/``-chest``/``-neuro`` use them).
WINDOWS: dict[str, Window] = {
    w.name: w
    for w in (
        Window("soft_tissue", 400.0, 40.0),
        Window("abdomen", 400.0, 40.0),
        Window("liver", 150.0, 60.0),
        Window("lung", 1500.0, -600.0),
        Window("bone", 1800.0, 400.0),
        Window("brain", 80.0, 40.0),
        Window("mediastinum", 350.0, 50.0),
        Window("model", MODEL_RANGE_HU[1] - MODEL_RANGE_HU[0], sum(MODEL_RANGE_HU) / 2.0),
        Window("ldctbench_abdomen", 400.0, 50.0),
        Window("ldctbench_chest", 1500.0, -600.0),
        Window("ldctbench_neuro", 80.0, 40.0),
    )
}


def get_window(spec: str | Window | tuple[float, float]) -> Window:
    """Resolve a window by name, ``"W/L"`` text (e.g. ``"400/40"``), ``(lo, hi)`` or Window."""
    if isinstance(spec, Window):
        return spec
    if isinstance(spec, tuple):
        lo, hi = spec
        return Window.from_range(f"[{lo:g},{hi:g}]", float(lo), float(hi))
    text = spec.strip()
    key = text.lower().replace("-", "_").replace(" ", "_")
    if key in WINDOWS:
        return WINDOWS[key]
    if "/" in text:
        try:
            w, level = (float(v) for v in text.split("/"))
        except ValueError as exc:
            raise ConfigError(f"window {spec!r}: expected 'width/level' numbers") from exc
        return Window(spec, w, level)
    import difflib

    close = difflib.get_close_matches(key, WINDOWS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"unknown window {spec!r}{hint} (known: {', '.join(sorted(WINDOWS))}, or 'W/L')"
    )


def _clip(x: ArrayT, lo: float, hi: float) -> ArrayT:
    torch_mod = sys.modules.get("torch")  # a tensor exists only once torch is imported
    out: Any
    if torch_mod is not None and isinstance(x, torch_mod.Tensor):
        out = x.clamp(lo, hi)
    else:
        out = np.clip(x, lo, hi)
    return cast("ArrayT", out)


def hu_to_model(hu: ArrayT, hu_range: tuple[float, float] = MODEL_RANGE_HU) -> ArrayT:
    """HU -> model range: ``(hu - lo) / (hi - lo)``, not clipped (exactly invertible)."""
    lo, hi = hu_range
    return (hu - lo) / (hi - lo)


def model_to_hu(x: ArrayT, hu_range: tuple[float, float] = MODEL_RANGE_HU) -> ArrayT:
    """Model range -> HU, the exact inverse of :func:`hu_to_model`."""
    lo, hi = hu_range
    return x * (hi - lo) + lo


def apply_window(hu: ArrayT, window: str | Window | tuple[float, float]) -> ArrayT:
    """HU -> [0, 1] through a window, clipped outside it."""
    w = get_window(window)
    return _clip((hu - w.lo_hu) / w.width_hu, 0.0, 1.0)


def clip_to_window(hu: ArrayT, window: str | Window | tuple[float, float]) -> ArrayT:
    """HU clipped to a window's bounds, still in HU.

    The same values as ``unwindow(apply_window(hu, w), w)`` without the affine round trip (so no
    rounding); metric profiles that compare in clipped HU use it.
    """
    w = get_window(window)
    return _clip(hu, w.lo_hu, w.hi_hu)


def unwindow(x: ArrayT, window: str | Window | tuple[float, float]) -> ArrayT:
    """[0, 1] -> HU through a window; exact inverse of :func:`apply_window` inside the window."""
    w = get_window(window)
    return x * w.width_hu + w.lo_hu


def apply_window_dicom(hu: ArrayT, window: str | Window | tuple[float, float]) -> ArrayT:
    """HU -> [0, 1] with the DICOM VOI LUT linear form (PS3.3 C.11.2.1.2), clipped.

    ``(hu - (c - 0.5)) / (w - 1) + 0.5`` for level ``c`` and width ``w``: the convention of
    LDCT-Bench's ``apply_center_width`` behind its published tables (differs from
    :func:`apply_window` by up to ``1/w`` of the range).
    """
    w = get_window(window)
    c, width = w.level_hu, w.width_hu
    return _clip((hu - (c - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def unwindow_dicom(x: ArrayT, window: str | Window | tuple[float, float]) -> ArrayT:
    """[0, 1] -> HU; exact inverse of :func:`apply_window_dicom` inside the window."""
    w = get_window(window)
    return (x - 0.5) * (w.width_hu - 1.0) + (w.level_hu - 0.5)


def model_to_window(
    x: ArrayT,
    window: str | Window | tuple[float, float],
    hu_range: tuple[float, float] = MODEL_RANGE_HU,
) -> ArrayT:
    """Model range -> windowed [0, 1] (one affine map + clip; used by losses and display)."""
    return apply_window(model_to_hu(x, hu_range), window)
