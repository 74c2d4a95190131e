"""Pair manifests: a CSV or YAML/JSON table of (patient, low, full, optional dose, optional tag).

CSV needs a header row ``patient,low,full[,dose][,tag]``. YAML/JSON is either a list of such
mappings or ``{"pairs": [...]}``. Relative paths are relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from pipeline.data.spec import PairSpec
from pipeline.errors import DatasetError
from pipeline.utils.files import read_text

MANIFEST_SUFFIXES = (".csv", ".yaml", ".yml", ".json")
_REQUIRED = ("patient", "low", "full")
_OPTIONAL = ("dose", "tag")


def _rows(path: Path) -> list[dict[str, Any]]:
    text = read_text(path, "manifest", DatasetError)
    if path.suffix.lower() == ".csv":
        return [dict(r) for r in csv.DictReader(text.splitlines())]
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise DatasetError(
            f"manifest is not valid {path.suffix[1:].upper()}: {exc}", path=path
        ) from exc
    if isinstance(data, dict) and "pairs" in data:
        data = data["pairs"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(
            "manifest must be a list of {patient, low, full, dose?} mappings", path=path
        )
    return data


def read_manifest(path: str | Path) -> tuple[list[PairSpec], list[str]]:
    """Parse a manifest into pair specs; returns ``(pairs, problems)`` (problems name the row)."""
    path = Path(path)
    base = path.parent
    pairs: list[PairSpec] = []
    problems: list[str] = []
    for i, row in enumerate(_rows(path), start=1):
        row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        missing = [k for k in _REQUIRED if not str(row.get(k) or "").strip()]
        unknown = sorted(set(row) - set(_REQUIRED) - set(_OPTIONAL))
        if missing or unknown:
            problems.append(
                f"manifest row {i}: "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown column(s) {', '.join(unknown)}" if unknown else "")
            )
            continue
        dose: float | None = None
        raw_dose = row.get("dose")
        if raw_dose not in (None, ""):
            try:
                dose = float(raw_dose)
            except (TypeError, ValueError):
                problems.append(f"manifest row {i}: dose {raw_dose!r} is not a number")
                continue
            if not 0.0 < dose <= 1.0:
                problems.append(f"manifest row {i}: dose {dose} must be a fraction in (0, 1]")
                continue
        low, full = (base / str(row[k]).strip() for k in ("low", "full"))
        for role, p in (("low", low), ("full", full)):
            if not p.exists():
                problems.append(f"manifest row {i}: {role} path {p} does not exist")
        pairs.append(
            PairSpec(
                patient=str(row["patient"]).strip(),
                low=low,
                full=full,
                dose=dose,
                layout="manifest",
                tag=str(row.get("tag") or "").strip(),
            )
        )
    return pairs, problems


def write_manifest(pairs: list[PairSpec], path: str | Path) -> Path:
    """Write pairs as a CSV or YAML/JSON manifest (format from the suffix); paths stay absolute."""
    path = Path(path)
    rows = [
        {
            "patient": p.patient,
            "low": str(p.low),
            "full": str(p.full),
            "dose": p.dose,
            "tag": p.tag,
        }
        for p in pairs
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["patient", "low", "full", "dose", "tag"])
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    elif suffix == ".json":
        path.write_text(json.dumps({"pairs": rows}, indent=2), encoding="utf-8")
    elif suffix in (".yaml", ".yml"):
        path.write_text(yaml.safe_dump({"pairs": rows}, sort_keys=False), encoding="utf-8")
    else:
        raise DatasetError(f"manifest suffix must be one of {MANIFEST_SUFFIXES}", path=path)
    return path
