"""Reading an ``ldct evaluate`` output folder (tables + summary.json) for the report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import LdctError

TABLE_NAMES = (
    "per_slice",
    "per_patient",
    "cohort",
    "tests",
    "roi",
    "qa",
    "nps",
    "inserts",
    "guardrails",
    "artifact_slices",
    "artifacts",
)


@dataclass
class EvalOutput:
    """The tables of one evaluation (missing tables are empty frames) and its summary."""

    root: Path
    tables: dict[str, pd.DataFrame]
    summary: dict[str, Any]

    @property
    def patients(self) -> list[str]:
        return [str(p["patient"]) for p in self.summary.get("patients", [])]

    def patient_info(self, patient: str) -> dict[str, Any]:
        for p in self.summary.get("patients", []):
            if str(p["patient"]) == patient:
                return dict(p)
        raise LdctError(f"patient {patient!r} is not in summary.json", path=self.root)

    def for_patient(self, name: str, patient: str) -> pd.DataFrame:
        df = self.tables[name]
        if df.empty or "patient" not in df.columns:
            return df
        return df[df["patient"].astype(str) == patient]


def load_eval(root: str | Path) -> EvalOutput:
    """Load ``summary.json`` and every table (Parquet preferred, CSV otherwise)."""
    root = Path(root)
    summary_path = root / "summary.json"
    if not summary_path.is_file():
        raise LdctError(
            "not an evaluation folder (no summary.json; run `ldct evaluate` first)", path=root
        )
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        raise LdctError(f"cannot read summary.json: {exc}", path=summary_path) from exc
    if not isinstance(summary, dict):
        raise LdctError(
            f"summary.json must hold a JSON object, found {type(summary).__name__}",
            path=summary_path,
        )
    tables: dict[str, pd.DataFrame] = {}
    for name in TABLE_NAMES:
        pq, csv = root / f"{name}.parquet", root / f"{name}.csv"
        try:
            if pq.is_file():
                tables[name] = pd.read_parquet(pq)
            elif csv.is_file():
                tables[name] = pd.read_csv(csv)
            else:
                tables[name] = pd.DataFrame()
        except Exception as exc:  # pyarrow/pandas raise many types for damaged files
            where = pq if pq.is_file() else csv
            raise LdctError(f"cannot read table {name}: {exc}", path=where) from exc
    for name in TABLE_NAMES:
        df = tables[name]
        if not df.empty and "patient" in df.columns:
            df["patient"] = df["patient"].astype(str)
    return EvalOutput(root, tables, summary)
