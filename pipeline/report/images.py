"""Slices for the image panels: which ones to show and their HU, read back from the series."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.errors import LdctError
from pipeline.io.volume import CTVolume
from pipeline.report.pseudonym import WITHHELD, Pseudonymizer

if TYPE_CHECKING:
    from pipeline.evaluate.pairing import EvalItem

log = logging.getLogger(__name__)


@dataclass
class PatientImages:
    """Aligned volumes per role (slices in the low-dose order), or why there are none."""

    volumes: dict[str, CTVolume] = field(default_factory=dict)
    problem: str = ""

    def slice(self, role: str, index: int) -> np.ndarray:
        return self.volumes[role].hu[index]


def pick_slices(
    per_slice: pd.DataFrame, profile: str, n_slices: int, n_repr: int
) -> list[tuple[str, int]]:
    """``[(caption, slice_index)]``: the worst slice by PSNR gain, then representative ones.

    With a reference, "worst" is the slice where denoising gained least (or lost most) PSNR
    against full dose under ``profile`` and "representative" the median-gain slices. Without a
    reference, the middle slice(s).
    """
    sub = (
        per_slice[(per_slice["profile"] == profile) & (per_slice["metric"] == "psnr")]
        if len(per_slice)
        else per_slice
    )
    if sub is not None and len(sub):
        pivot = sub.pivot_table(index="slice_index", columns="comparison", values="value")
        if {"low_vs_full", "denoised_vs_full"} <= set(pivot.columns):
            gain = (
                (pivot["denoised_vs_full"] - pivot["low_vs_full"])
                .replace([np.inf, -np.inf], np.nan)
                .dropna()
            )
            if len(gain):
                order = gain.sort_values()
                picks = [
                    (
                        f"worst slice (PSNR gain {order.iloc[0]:+.2f} dB, {profile})",
                        int(order.index[0]),
                    )
                ]
                mid = len(order) // 2
                for k in range(n_repr):
                    idx = int(order.index[min(len(order) - 1, mid + k)])
                    if idx not in {p[1] for p in picks}:
                        picks.append(
                            (
                                f"representative slice (median PSNR gain {order.loc[idx]:+.2f} dB)",
                                idx,
                            )
                        )
                return picks
    if n_slices <= 0:
        return []
    return [("middle slice", n_slices // 2)]


def load_patient_images(
    summary: dict,
    patient: str,
    *,
    source: EvalItem | Mapping[str, Any] | None = None,
    pseudo: Pseudonymizer | None = None,
) -> PatientImages:
    """Read this patient's volumes from the series folders ``ldct evaluate`` recorded.

    ``source``: the item ``ldct qa`` paired in this process, or this patient's record of an
    unmapped summary.json (default: the record of ``patient`` in ``summary``). Only the files of
    the recorded folders are read; the input trees are scanned again (with the evaluation's
    pairing rule) only for a summary.json written before the folders were recorded. A
    pseudonymised evaluation records neither folders nor input paths (only ``ldct qa``, which
    holds the paired items, draws its images); with ``pseudo`` enabled an error is shown by its
    kind only (its text names input files and UIDs).
    """
    from pipeline.evaluate.pairing import EvalItem
    from pipeline.evaluate.runner import load_aligned

    out = PatientImages()
    withhold = pseudo is not None and pseudo.enabled
    try:
        if isinstance(source, EvalItem):
            item = source
        else:
            info: Mapping[str, Any] = (
                source
                if source is not None
                else next(
                    (p for p in summary.get("patients", []) if p.get("patient") == patient), {}
                )
            )
            if "series_folders" in info:
                item = EvalItem.from_record(patient, info)
            else:
                item = _repaired_item(summary, str(info.get("patient", patient)), pseudo)
        out.volumes = load_aligned(item)
    except LdctError as exc:
        out.problem = f"{type(exc).__name__} (details withheld)" if withhold else str(exc)
        log.warning("%s: images unavailable: %s", patient, out.problem)
    return out


def _repaired_item(summary: dict, patient: str, pseudo: Pseudonymizer | None) -> EvalItem:
    """An older summary.json (no series folders): pair the inputs again with its own rule."""
    from pipeline.evaluate.pairing import pair_inputs

    inputs = summary.get("inputs", {})
    if inputs.get("low") == WITHHELD:
        raise LdctError(
            "the evaluation is pseudonymised and records no input paths "
            "(`ldct qa --pseudonymize` draws the images)"
        )
    if not inputs.get("low") or not Path(inputs["low"]).exists():
        raise LdctError(
            "low-dose input of the evaluation is no longer at its path", path=inputs.get("low")
        )
    pairing = pair_inputs(  # with ``pseudo`` its items and log lines carry the pseudonyms
        inputs["low"],
        inputs.get("full"),
        inputs.get("denoised"),
        ignore_frame_of_reference=bool(summary.get("ignore_frame_of_reference")),
        pseudo=pseudo,
    )
    shown = pseudo(patient) if pseudo is not None else patient
    item = next((it for it in pairing.items if it.patient == shown), None)
    if item is None:
        raise LdctError(f"patient {shown!r} not found when re-pairing the inputs")
    return item
