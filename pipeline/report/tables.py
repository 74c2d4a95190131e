"""Reading an ``ldct evaluate`` output folder (tables + summary.json) for the report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.errors import LdctError

if TYPE_CHECKING:
    from pipeline.report.pseudonym import Pseudonymizer

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

    @property
    def pseudonymized(self) -> bool:
        """Whether ``ldct evaluate|qa --pseudonymize`` wrote it (its identifiers are mapped)."""
        return bool((self.summary.get("pseudonymization") or {}).get("enabled"))

    def with_pseudonyms(self, pseudo: Pseudonymizer) -> EvalOutput:
        """The evaluation as the report reads it from a run without ``--pseudonymize``: every
        identifier field mapped (the ``patient`` column and the UID columns of every table; the
        patients, their series UIDs, the models by patient and the artifacts of summary.json);
        the command's arguments, the input paths and the problems are withheld (the report
        re-pairs the inputs from the unmapped summary; no summary is written)."""
        tables = {}
        for name, df in self.tables.items():
            df = df.copy()
            for col in df.columns:
                if col == "patient":
                    df[col] = df[col].astype(str).map(pseudo)
                elif str(col).endswith("_uid"):
                    df[col] = df[col].map(lambda v: pseudo.uid(str(v)) if isinstance(v, str) else v)
            tables[name] = df
        summary = dict(self.summary)
        summary["patients"] = [
            {
                **p,
                "patient": pseudo(str(p["patient"])),
                "series": {r: pseudo.uid(str(u)) for r, u in (p.get("series") or {}).items()},
            }
            for p in self.summary.get("patients", [])
        ]
        prov = dict(summary.get("provenance") or {})
        prov["models"] = {pseudo(str(k)): v for k, v in (prov.get("models") or {}).items()}
        summary["provenance"] = prov
        summary["artifacts"] = [
            {**a, "patient": pseudo(str(a.get("patient")))} for a in summary.get("artifacts", [])
        ]
        inputs = dict(summary.get("inputs") or {})
        summary["inputs"] = {
            k: {b: pseudo.path(p) for b, p in v.items()} if isinstance(v, dict) else pseudo.path(v)
            for k, v in inputs.items()
        }
        summary["command"] = pseudo.command(str(summary.get("command") or "").split())
        n = len(summary.get("problems") or [])
        summary["problems"] = [f"{n} problem(s) of the evaluation, withheld"] if n else []
        summary["pseudonymization"] = pseudo.describe()
        return EvalOutput(self.root, tables, summary)

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
