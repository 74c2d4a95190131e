"""Matplotlib (Agg) figures for QA pages, returned as PNG ``data:`` URIs (pages open from disk)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipeline.intensity import apply_window, get_window

ROLE_COLORS = {"low": "#d95f02", "denoised": "#1b9e77", "full": "#7570b3"}
ROLE_LABELS = {"low": "low dose", "denoised": "denoised", "full": "full dose"}


def to_data_uri(fig: Figure, dpi: int = 96) -> str:
    """Render and close ``fig``; return a base64 PNG data URI."""
    buf = io.BytesIO()
    # no PNG text chunks: matplotlib would write its Software key; nothing else may land there
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def slice_png(hu: np.ndarray, window: str) -> str:
    """One slice at its native resolution in a window, as a grayscale PNG data URI."""
    from PIL import Image

    g = np.asarray(apply_window(hu.astype(np.float64), get_window(window)))
    buf = io.BytesIO()
    Image.fromarray(np.round(255.0 * g).astype(np.uint8), mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_panel(
    images_hu: Mapping[str, np.ndarray],
    windows: Sequence[str],
    diff_limit_hu: float = 60.0,
    title: str = "",
) -> str:
    """Rows = windows, columns = roles (low/denoised/full) + difference maps.

    Difference maps (``denoised - low``: what the model removed; ``denoised - full``: what is
    left to fix) are drawn in HU with a symmetric colour scale of +-``diff_limit_hu``.
    """
    roles = [r for r in ("low", "denoised", "full") if r in images_hu]
    diffs = [(a, b) for a, b in (("denoised", "low"), ("denoised", "full")) if {a, b} <= set(roles)]
    ncols = len(roles) + len(diffs)
    nrows = len(windows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    for r, wname in enumerate(windows):
        w = get_window(wname)
        for c, role in enumerate(roles):
            ax = axes[r][c]
            ax.imshow(apply_window(images_hu[role], w), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{ROLE_LABELS[role]}\n{w.name} {w.width_hu:g}/{w.level_hu:g}", fontsize=8)
        for k, (a, b) in enumerate(diffs):
            ax = axes[r][len(roles) + k]
            if r == 0:
                im = ax.imshow(
                    images_hu[a] - images_hu[b],
                    cmap="RdBu_r",
                    vmin=-diff_limit_hu,
                    vmax=diff_limit_hu,
                )
                ax.set_title(f"{a} - {b} (HU)", fontsize=8)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
            else:
                ax.set_visible(False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    return to_data_uri(fig)


def slice_curves(per_slice: pd.DataFrame, profile: str) -> str:
    """PSNR and SSIM per slice, low vs denoised (both against full dose), under one profile."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    for ax, metric in zip(axes, ("psnr", "ssim"), strict=True):
        sub = per_slice[(per_slice["profile"] == profile) & (per_slice["metric"] == metric)]
        for comparison, role in (("low_vs_full", "low"), ("denoised_vs_full", "denoised")):
            rows = sub[sub["comparison"] == comparison].sort_values("slice_index")
            ax.plot(
                rows["slice_index"],
                rows["value"],
                marker=".",
                color=ROLE_COLORS[role],
                label=ROLE_LABELS[role],
            )
        unit = sub["unit"].iloc[0] if not sub.empty else ""
        ax.set_xlabel("slice index")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{metric.upper()} {('[' + unit + ']') if unit and unit != '1' else ''}")
        ax.set_title(f"{metric.upper()} vs full dose ({profile})", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)


def nps_curves(nps: pd.DataFrame) -> str:
    """Radial TG-233 NPS per role (solid: adjacent-slice noise; dashed: role - full dose)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    methods = nps["method"] if "method" in nps.columns else pd.Series("adjacent", nps.index)
    for role in ("low", "denoised", "full"):
        for method, style, suffix in (("adjacent", "-", ""), ("minus_full", "--", " − full")):
            rows = nps[(nps["role"] == role) & (methods == method)].sort_values("freq_cyc_mm")
            if not rows.empty:
                ax.plot(
                    rows["freq_cyc_mm"],
                    rows["nps_hu2_mm2"],
                    style,
                    color=ROLE_COLORS[role],
                    label=ROLE_LABELS[role] + suffix,
                )
    ax.set_xlabel("spatial frequency [cycles/mm]")
    ax.set_ylabel("NPS [HU² mm²]")
    ax.set_title("noise power spectrum (noise-only images, TG-233)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return to_data_uri(fig)


def residual_spectrum(
    log_power: np.ndarray,
    marks_cyc_px: Sequence[tuple[float, float]],
    title: str,
) -> str:
    """Centred log power spectrum of a residual with the flagged frequencies circled.

    ``marks_cyc_px`` are ``(fy, fx)`` in cycles/pixel (in [-0.5, 0.5]).
    """
    fig, ax = plt.subplots(figsize=(3.4, 3.4))
    ax.imshow(log_power, cmap="magma", extent=(-0.5, 0.5, 0.5, -0.5), interpolation="nearest")
    for fy, fx in marks_cyc_px:
        ax.add_patch(plt.Circle((fx, fy), 0.03, fill=False, color="cyan", lw=1.5))
    ax.set_xlabel("fx [cycles/px]")
    ax.set_ylabel("fy [cycles/px]")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)
