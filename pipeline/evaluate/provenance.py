"""Provenance for summary.json: model (from the denoise manifest / a checkpoint), packages, date."""

from __future__ import annotations

import json
import logging
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGES = ("ldct-pipeline", "torch", "numpy", "scipy", "scikit-image", "pandas", "pydicom")


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def find_denoise_manifest(denoised: Path) -> Path | None:
    """``manifest.json`` written by ``ldct denoise`` in DEN or one of its parents (3 levels)."""
    for d in [denoised, *list(denoised.parents)[:3]]:
        cand = d / "manifest.json"
        if cand.is_file():
            return cand
    return None


def denoise_rows(denoised: Path | None) -> dict[str, dict[str, Any]]:
    """Manifest rows keyed by derived SeriesInstanceUID (empty if no manifest).

    Each row also gets ``vgg_weights`` from the manifest's run record of its model (what the
    checkpoint records about its training loss), when the run says.
    """
    if denoised is None:
        return {}
    path = find_denoise_manifest(denoised)
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        log.warning("cannot read denoise manifest %s: %s", path, exc)
        return {}
    rows = data.get("rows", data) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        return {}
    runs = data.get("runs", []) if isinstance(data, dict) else []
    vgg = {
        str(r.get("model_sha256")): r.get("vgg_weights")
        for r in runs
        if isinstance(r, dict) and r.get("vgg_weights") not in (None, "")
    }
    out = {}
    for r in rows:
        if isinstance(r, dict):
            row = dict(r)
            if str(row.get("model_sha256")) in vgg:
                row.setdefault("vgg_weights", vgg[str(row.get("model_sha256"))])
            out[str(row.get("derived_series_uid"))] = row
    return out


def guardrail_row(
    patient: str,
    low_meta: dict[str, Any],
    low_spacing_mm: tuple[float, float, float],
    manifest_row: dict[str, Any],
    envelope: dict[str, Any] | None,
) -> dict[str, Any]:
    """Why this patient's input needs review (pipeline.models.envelope), from the denoise
    manifest when it recorded it, else from the low-dose header (+ ``--checkpoint``'s envelope)."""
    from pipeline.models.envelope import (
        SeriesFacts,
        TrainingEnvelope,
        guardrail_notes,
        review_reasons,
    )

    facts = SeriesFacts.from_meta(low_meta, low_spacing_mm)
    if "review_reasons" in manifest_row:
        reasons = [r for r in str(manifest_row.get("review_reasons") or "").split("; ") if r]
        notes = [r for r in str(manifest_row.get("review_notes") or "").split("; ") if r]
        source = "denoise manifest"
    else:
        env = TrainingEnvelope.from_dict(envelope) if envelope else None
        reasons = review_reasons(env, facts)
        notes = guardrail_notes(env, facts, learned=env is not None)
        source = "input header" + (" + checkpoint envelope" if env else "")
    return {
        "patient": patient,
        "source": source,
        "n_reasons": len(reasons),
        "reasons": "; ".join(reasons),
        "notes": "; ".join(notes),
        "lossy": bool(facts.lossy) if facts.lossy is not None else True,
        "pixel_spacing_mm": float(low_spacing_mm[1]),
        "slice_thickness_mm": facts.slice_thickness_mm,
        "kvp": facts.kvp,
        "ctdivol_mgy": facts.ctdivol_mgy,
        "kernel": facts.kernel or "",
        "manufacturer": str(low_meta.get("Manufacturer") or ""),
        "model_name": str(low_meta.get("ManufacturerModelName") or ""),
    }


def checkpoint_info(path: Path | None) -> dict[str, Any]:
    """Model name/hash and the VGG weights origin recorded in a training checkpoint."""
    if path is None:
        return {}
    from pipeline.models.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    extra = ck.meta.get("extra", ck.meta) if isinstance(ck.meta, dict) else {}
    vgg = (extra or {}).get("vgg_weights")
    return {
        "checkpoint": str(path),
        "training_envelope": (extra or {}).get("training_envelope"),
        "model_name": ck.model_cfg.get("name"),
        "model_hash": ck.model_hash,
        "model_sha256": ck.sha256,
        "vgg_weights": str(vgg) if vgg not in (None, "") else None,
    }
