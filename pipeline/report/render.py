"""Write the QA report: one self-contained HTML page per patient, a cohort index, the tables."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline import __version__
from pipeline.config import config_hash, save_resolved
from pipeline.errors import LdctError
from pipeline.evaluate.provenance import now_utc
from pipeline.report.config import ReportConfig
from pipeline.report.context import (
    HEADLINE_COLUMNS,
    baseline_names,
    fmt,
    headline_cells,
    patient_context,
    rule_rows,
)
from pipeline.report.images import load_patient_images
from pipeline.report.pseudonym import Pseudonymizer
from pipeline.report.tables import EvalOutput, load_eval
from pipeline.report.verdict import Verdict, judge
from pipeline.utils.files import atomic_write_text, ensure_inside
from pipeline.utils.progress import progress
from pipeline.utils.text import printable

if TYPE_CHECKING:
    from pipeline.evaluate.pairing import EvalItem

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class ReportResult:
    out_dir: Path
    index: Path
    pages: dict[str, Path] = field(default_factory=dict)  # shown patient name -> page
    verdicts: dict[str, str] = field(default_factory=dict)  # shown patient name -> verdict
    pdfs: list[Path] = field(default_factory=list)


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("pipeline.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def headline_columns(ev: EvalOutput) -> list[dict[str, str]]:
    """Index columns: the fixed headline, then PSNR/SSIM (redcnn) of each baseline."""
    cols = list(HEADLINE_COLUMNS[:4])
    for name in baseline_names(ev):
        cols += [{"label": f"PSNR {name} [dB]"}, {"label": f"SSIM {name}"}]
    return cols + list(HEADLINE_COLUMNS[4:])


def page_name(shown: str) -> str:
    """File name of a patient page: a slug of the shown name plus a hash (never a raw tag)."""
    slug = _SAFE.sub("_", shown).strip("_")[:40] or "patient"
    return f"{slug}-{hashlib.sha256(shown.encode()).hexdigest()[:8]}.html"


def vgg_banner(provenance: dict[str, Any]) -> str:
    origin = vgg_origin(provenance)
    if origin.startswith("random"):
        return (
            "The model was trained with a perceptual loss on UNTRAINED (random) VGG16 features, "
            "not ImageNet weights."
        )
    return ""


#: How the checkpoint's ``vgg_weights`` reads on a report.
VGG_TEXT = {
    "none": "none (no perceptual loss)",
    "imagenet": "imagenet",
    "random (untrained)": "random (untrained)",
    "random": "random (untrained)",
}


def vgg_origin(provenance: dict[str, Any], patient: str | None = None) -> str:
    """VGG16 weights of the training loss, as the checkpoint records them ('not recorded').

    From ``--checkpoint`` (``provenance.vgg_weights``) or the denoise manifest's run record
    of the model (``provenance.models[patient].vgg_weights``); values: none, imagenet,
    random (untrained), file.
    """
    models = provenance.get("models") or {}
    picks = [models.get(patient)] if patient is not None else list(models.values())
    for source in [provenance, *picks]:
        value = (source or {}).get("vgg_weights")
        if isinstance(value, dict):  # older summaries: {key: value} of checkpoint vgg keys
            value = value.get("vgg_weights")
        if value not in (None, ""):
            return VGG_TEXT.get(str(value), str(value))
    return "not recorded"


def provenance_rows(
    ev: EvalOutput, cfg: ReportConfig, patient_info: dict[str, Any] | None, created: str
) -> list[tuple[str, str]]:
    prov = ev.summary.get("provenance", {})
    rows: list[tuple[str, str]] = []
    model = (prov.get("models") or {}).get(patient_info["patient"]) if patient_info else None
    if model:
        rows.append(
            ("model", f"{model.get('model_name')} (sha256 {str(model.get('model_sha256'))[:16]})")
        )
        rows.append(
            ("inference", f"precision {model.get('precision')}, tiling {model.get('tiling')}")
        )
    elif prov.get("model_name"):
        model_id = prov.get("model_hash") or prov.get("model_sha256")
        rows.append(("model", f"{prov.get('model_name')} (hash {model_id})"))
    elif patient_info is None and prov.get("models"):
        seen = sorted(
            {
                f"{m.get('model_name')} (sha256 {str(m.get('model_sha256'))[:16]})"
                for m in prov["models"].values()
            }
        )
        rows.append(("model", "; ".join(seen) + " (from the ldct denoise manifest)"))
    else:
        rows.append(
            ("model", "not recorded (no denoise manifest or checkpoint given to ldct evaluate)")
        )
    rows.append(
        (
            "VGG16 weights (training)",
            vgg_origin(prov, patient_info["patient"] if patient_info else None),
        )
    )
    rows.append(
        (
            "evaluation",
            f"{ev.summary.get('created_utc')} — {ev.summary.get('command') or 'ldct evaluate'}",
        )
    )
    rows.append(("pairing rule", str(ev.summary.get("pairing_rule", ""))))
    rows.append(
        (
            "FrameOfReferenceUID",
            "differences accepted (--ignore-frame-of-reference)"
            if ev.summary.get("ignore_frame_of_reference")
            else "low and full must share one (or the dataset layout vouches for the pairing)",
        )
    )
    rows.append(
        ("report", f"{created}, ldct-pipeline {__version__}, report config {config_hash(cfg)}")
    )
    pk = prov.get("packages", {})
    rows.append(("packages", ", ".join(f"{k} {v}" for k, v in pk.items())))
    if patient_info:
        for role, uid in (patient_info.get("series") or {}).items():
            rows.append((f"{role} SeriesInstanceUID", str(uid)))
    return rows


def _write_tables(ev: EvalOutput, out: Path) -> list[dict[str, str]]:
    links = []
    for name, df in ev.tables.items():
        if df.empty:
            continue
        atomic_write_text(out / "tables" / f"{name}.csv", df.to_csv(index=False))
        links.append({"name": name, "href": f"tables/{name}.csv"})
    return links


def build_report(
    eval_dir: str | Path,
    out_dir: str | Path,
    cfg: ReportConfig | None = None,
    *,
    key: str | None = None,
    pseudo: Pseudonymizer | None = None,
    items: Mapping[str, EvalItem] | None = None,
) -> ReportResult:
    """Render the report for an ``ldct evaluate`` folder into ``out_dir``.

    ``pseudo`` (else one from ``cfg.pseudonymize`` and ``key``): the pseudonymiser of the run.
    An evaluation written with ``--pseudonymize`` is already mapped and shown as it is; it
    records no series folders, so its images need ``items`` (``ldct qa`` passes the items it
    paired, by patient as shown); a plain evaluation is mapped field by field when it is read
    (:meth:`EvalOutput.with_pseudonyms`) and its images found from its own records.
    """
    cfg = cfg or ReportConfig()
    ev = load_eval(eval_dir)
    out = Path(out_dir)
    if out.resolve() == Path(eval_dir).resolve():
        raise LdctError("the report folder must differ from the evaluation folder", path=out)
    (out / "patients").mkdir(parents=True, exist_ok=True)
    pseudo = pseudo or Pseudonymizer(cfg.pseudonymize, key)
    raw_summary = ev.summary
    # where each shown patient's images are: the items ``ldct qa`` paired, else the records of
    # the unmapped summary.json (keyed by the name the pages show)
    sources: dict[str, Any] = dict(items or {})
    if pseudo.enabled and not ev.pseudonymized:
        ev = ev.with_pseudonyms(pseudo)
        for rec in raw_summary.get("patients", []):
            sources.setdefault(pseudo(str(rec["patient"])), rec)
    env = _env()
    created = now_utc()
    common = _common_page_args(ev)
    result = ReportResult(out, out / "index.html")
    index_rows: list[dict[str, Any]] = []
    verdicts: list[Verdict] = []
    for patient in progress(ev.patients, desc="report", total=len(ev.patients)):
        images = load_patient_images(
            raw_summary, patient, source=sources.get(patient), pseudo=pseudo
        )
        verdict = judge(patient, cfg.rules, ev.tables)
        verdicts.append(verdict)
        ctx = patient_context(ev, patient, verdict, images, cfg)
        info = ev.patient_info(patient)
        html = env.get_template("patient.html.j2").render(
            **ctx,
            **common,
            provenance_rows=provenance_rows(ev, cfg, info, created),
            rules=[],
            print_title=f"LDCT QA report - patient {patient} - verdict {verdict.verdict}",
        )
        page = ensure_inside(out, out / "patients" / page_name(patient))
        atomic_write_text(page, html)
        result.pages[patient] = page
        result.verdicts[patient] = verdict.verdict
        index_rows.append(_index_row(ev, patient, page, verdict, ctx))
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("pass", "review", "fail")}
    counts["total"] = len(verdicts)
    links = _write_tables(ev, out)
    links.append(_write_verdicts(out, index_rows))
    html = env.get_template("index.html.j2").render(
        **common,
        counts=counts,
        patients=index_rows,
        headline_columns=headline_columns(ev),
        cohort_rows=_cohort_rows(ev),
        rules=rule_rows(cfg.rules),
        rule_results=None,
        table_links=links,
        problems=[printable(p) for p in ev.summary.get("problems") or []],
        provenance_rows=provenance_rows(ev, cfg, None, created),
        print_title="LDCT QA report - cohort index",
    )
    atomic_write_text(result.index, html)
    save_resolved(cfg, out / "report_config.yaml")
    if cfg.pdf:
        _print_pdfs(result)
    return result


def _common_page_args(ev: EvalOutput) -> dict[str, Any]:
    """What every page shows: styles, the metric conventions, the VGG weights banner, version."""
    profiles = [
        (name, str(d.get("convention", d)) if isinstance(d, dict) else str(d))
        for name, d in sorted((ev.summary.get("profiles") or {}).items())
    ]
    return {
        "css": files("pipeline.report").joinpath("templates/style.css").read_text(encoding="utf-8"),
        "profiles": profiles,
        "vgg_banner": vgg_banner(ev.summary.get("provenance", {})),
        "provenance": {"ldct_pipeline": __version__},
    }


def _index_row(
    ev: EvalOutput, patient: str, page: Path, verdict: Verdict, ctx: dict[str, Any]
) -> dict[str, Any]:
    """One patient's row of the cohort index (verdict, headline numbers, reasons, thumbnail)."""
    return {
        "name": patient,
        "href": f"patients/{page.name}",
        "verdict": verdict.verdict,
        "headline": headline_cells(ev, patient),
        "reasons": verdict.reasons + [f"input: {g}" for g in ctx["guardrail"].get("reasons", [])],
        "acq": ctx["guardrail"],
        "view": ctx["panels"][-1]["view"] if ctx["panels"] else None,
    }


def _cohort_rows(ev: EvalOutput) -> list[dict[str, Any]]:
    """The cohort table of the index: mean, SD and 95 % CI per comparison/profile/metric."""
    return [
        {
            **{k: r[k] for k in ("comparison", "profile", "metric", "unit")},
            "n_patients": int(r["n_patients"]),
            "mean": fmt(r["mean"]),
            "sd": fmt(r["sd"]),
            "ci": f"[{fmt(r['ci95_lo'])}, {fmt(r['ci95_hi'])}]",
        }
        for _, r in ev.tables["cohort"].iterrows()
    ]


def _write_verdicts(out: Path, index_rows: list[dict[str, Any]]) -> dict[str, str]:
    """tables/verdicts.csv (patient, verdict, reasons); returns its link for the index."""
    verdict_df = pd.DataFrame(
        [
            {"patient": p["name"], "verdict": p["verdict"], "reasons": "; ".join(p["reasons"])}
            for p in index_rows
        ]
    )
    atomic_write_text(out / "tables" / "verdicts.csv", verdict_df.to_csv(index=False))
    return {"name": "verdicts", "href": "tables/verdicts.csv"}


def _print_pdfs(result: ReportResult) -> None:
    """One PDF per patient page under pdf/ (headless Chromium)."""
    from pipeline.report.browser import print_pdf

    pdf_dir = result.out_dir / "pdf"
    pdf_dir.mkdir(parents=True, exist_ok=True)
    for page in result.pages.values():
        result.pdfs.append(print_pdf(page, pdf_dir / page.with_suffix(".pdf").name))
