"""Named metric profiles: each states window, data range, SSIM kernel and mask in one place.

Published LDCT numbers use different conventions (DOMAIN.md section 6); a number without its
profile is meaningless, so every table row and JSON summary names its profile.

* ``redcnn``: HU clipped to the soft-tissue window [-160, 240], data_range 400 HU, SSIM 11x11
  Gaussian (sigma 1.5, population covariance) on the **zero-padded** image, averaged over the
  full map (``F.conv2d(..., padding=5)`` of the RED-CNN code, SSinyu/RED-CNN ``measure.py``,
  from pytorch-ssim); no mask.
* ``ldctbench-abdomen`` / ``-chest`` / ``-neuro``: per-anatomy window (400/50, 1500/-600,
  80/40) mapped to [0, 1] with LDCT-Bench's ``apply_center_width`` formula
  ``(x - (c - 0.5)) / (w - 1) + 0.5`` (clipped), data_range 1, skimage SSIM 7x7 uniform with
  the 49/48 sample-covariance factor (border cropped, as skimage); no mask. Padding pixels keep
  the value the file stores (PixelPaddingValue rescaled to HU), as LDCT-Bench reads
  ``pixel_array`` unmodified, instead of the reader's air (``AIR_HU``, -1000 HU).
* ``hu``: RMSE and MAE in HU of the raw (unwindowed) values inside the body mask.

Windowing goes through :mod:`pipeline.intensity` (the one window registry: every profile's
window is an entry of ``WINDOWS``). SSIM is not
invariant to a shift of the values (its luminance term), so the two window conventions differ:
``redcnn`` computes on the *clipped HU* values (``hu`` clamped to the window's bounds) with
data_range 400, LDCT-Bench on the window mapped to [0, 1] with data_range 1, as their codes do.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from pipeline.errors import ConfigError
from pipeline.evaluate import metrics as M
from pipeline.intensity import (
    Window,
    apply_window,
    apply_window_dicom,
    clip_to_window,
    get_window,
)

MaskRule = Literal["none", "body"]
#: ``lo_width``: (hu - lo) / width; ``dicom``: (hu - (c - 0.5)) / (w - 1) + 0.5 (LDCT-Bench)
WindowFormula = Literal["lo_width", "dicom"]
#: Padding pixels: ``air`` as read (-1000 HU); ``stored``: the file's own padding value in HU
PaddingRule = Literal["air", "stored"]
#: Values the metrics see: the window mapped to [0,1], HU clipped to the window, or raw HU.
ValueSpace = Literal["window01", "clipped_hu", "hu"]


@dataclass(frozen=True)
class MetricProfile:
    """One metric convention. ``window=None`` means raw HU (no clipping)."""

    name: str
    window: Window | None
    value_space: ValueSpace
    data_range: float | None
    data_range_units: str
    ssim_kernel: M.SsimKernel | None
    mask: MaskRule
    metrics: tuple[str, ...]
    convention: str
    window_formula: WindowFormula = "lo_width"
    ssim_border: M.SsimBorder = "crop"
    padding: PaddingRule = "air"

    def describe(self) -> dict[str, Any]:
        """JSON-able statement of the convention (written into every summary)."""
        d = asdict(self)
        if self.window is not None:
            d["window"] = {
                "name": self.window.name,
                "width_hu": self.window.width_hu,
                "level_hu": self.window.level_hu,
                "lo_hu": self.window.lo_hu,
                "hi_hu": self.window.hi_hu,
            }
        if self.ssim_kernel is not None:
            d["ssim_window_px"] = M.window_size(self.ssim_kernel)
            d["ssim_covariance"] = (
                "sample (N/(N-1))" if self.ssim_kernel == "uniform" else ("population")
            )
            half = (M.window_size(self.ssim_kernel) - 1) // 2
            d["ssim_border_crop_px"] = half if self.ssim_border == "crop" else 0
            d["ssim_zero_pad_px"] = half if self.ssim_border == "zero_pad" else 0
        d["metrics"] = list(self.metrics)
        return d


#: Units of each metric name as they appear in the tables.
METRIC_UNITS: dict[str, str] = {"psnr": "dB", "ssim": "1", "rmse_hu": "HU", "mae_hu": "HU"}


def _ldctbench(anatomy: str, window: Window) -> MetricProfile:
    return MetricProfile(
        name=f"ldctbench-{anatomy}",
        window=window,
        value_space="window01",
        data_range=1.0,
        data_range_units="window [0,1]",
        ssim_kernel="uniform",
        mask="none",
        metrics=("psnr", "ssim"),
        convention=(
            f"LDCT-Bench: HU window {window.width_hu:g}/{window.level_hu:g} mapped to [0,1] "
            "as (x - (c - 0.5))/(w - 1) + 0.5 with clipping, data_range 1, SSIM 7x7 uniform "
            "(sample covariance 49/48), border 3 px cropped, no mask; padding pixels at the "
            "file's stored padding value"
        ),
        window_formula="dicom",
        padding="stored",
    )


PROFILES: dict[str, MetricProfile] = {
    p.name: p
    for p in (
        MetricProfile(
            name="redcnn",
            window=get_window("soft_tissue"),
            value_space="clipped_hu",
            data_range=400.0,
            data_range_units="HU",
            ssim_kernel="gaussian",
            mask="none",
            metrics=("psnr", "ssim"),
            convention=(
                "RED-CNN/CTformer: HU clipped to [-160, 240], data_range 400 HU, SSIM 11x11 "
                "Gaussian sigma 1.5 (population covariance) on the zero-padded image, mean "
                "over the full map (RED-CNN measure.py), no mask"
            ),
            ssim_border="zero_pad",
        ),
        _ldctbench("abdomen", get_window("ldctbench_abdomen")),
        _ldctbench("chest", get_window("ldctbench_chest")),
        _ldctbench("neuro", get_window("ldctbench_neuro")),
        MetricProfile(
            name="hu",
            window=None,
            value_space="hu",
            data_range=None,
            data_range_units="HU",
            ssim_kernel=None,
            mask="body",
            metrics=("rmse_hu", "mae_hu"),
            convention="raw HU (no window), RMSE and MAE over the body mask (HU > -500, "
            "largest component, holes filled)",
        ),
    )
}

DEFAULT_PROFILES: tuple[str, ...] = ("redcnn", "ldctbench-abdomen", "hu")


def get_profile(name: str | MetricProfile) -> MetricProfile:
    """Look up a profile by name (with a did-you-mean hint)."""
    if isinstance(name, MetricProfile):
        return name
    if name in PROFILES:
        return PROFILES[name]
    close = difflib.get_close_matches(name, PROFILES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown metric profile {name!r}{hint} (known: {', '.join(PROFILES)})")


def compute_profile(
    pred_hu: torch.Tensor,
    target_hu: torch.Tensor,
    profile: str | MetricProfile,
    body_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """All metrics of ``profile`` for ``(B, 1, H, W)`` HU tensors -> ``{metric: (B,)}``.

    ``body_mask`` (bool, same shape) is required by profiles with ``mask="body"`` and ignored
    otherwise. Keys are metric names of :data:`METRIC_UNITS`.
    """
    p = get_profile(profile)
    mask = None
    if p.mask == "body":
        if body_mask is None:
            raise ConfigError(f"profile {p.name!r} needs a body mask; none was given")
        mask = body_mask
    x, y = pred_hu, target_hu
    dr = p.data_range if p.data_range is not None else 1.0  # unused by rmse/mae
    if p.window is not None and p.value_space == "clipped_hu":
        x = clip_to_window(pred_hu, p.window)
        y = clip_to_window(target_hu, p.window)
    elif p.window is not None:
        fn = apply_window_dicom if p.window_formula == "dicom" else apply_window
        x = fn(pred_hu, p.window)
        y = fn(target_hu, p.window)
    out: dict[str, torch.Tensor] = {}
    for name in p.metrics:
        if name == "psnr":
            out[name] = M.psnr(x, y, dr, mask=mask)
        elif name == "ssim":
            if p.ssim_kernel is None:  # pragma: no cover - PROFILES is static
                raise ConfigError(f"profile {p.name!r}: ssim without a kernel")
            out[name] = M.ssim(x, y, dr, kernel=p.ssim_kernel, mask=mask, border=p.ssim_border)
        elif name == "rmse_hu":
            out[name] = M.rmse(x, y, mask=mask)
        elif name == "mae_hu":
            out[name] = M.mae(x, y, mask=mask)
        else:  # pragma: no cover - PROFILES is static
            raise ConfigError(f"profile {p.name!r}: unknown metric {name!r}")
    return out
