"""``ldct evaluate``: pair series, compute metrics and QA per patient, write tidy tables.

Per patient (one at a time, so memory holds one patient's volumes): read and align the series
(:mod:`pipeline.evaluate.pairing`), compute every profile's metrics for ``low_vs_full`` and
``denoised_vs_full`` in batches of slices, then the no-reference QA and the artifact detector.
Tables and ``summary.json`` are described in docs/evaluation.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.data.pairs import PairSpec, pair_volumes, slice_positions_mm
from pipeline.errors import ConfigError, LdctError
from pipeline.evaluate import qa, stats
from pipeline.evaluate.artifacts import DEFAULT_THRESHOLDS, ArtifactThresholds
from pipeline.evaluate.batched import compute_profiles
from pipeline.evaluate.body_mask import body_mask
from pipeline.evaluate.pairing import (
    RESERVED_ROLES,
    EvalItem,
    attach_baseline,
    pair_inputs,
    pseudonyms,
)
from pipeline.evaluate.profiles import (
    DEFAULT_PROFILES,
    METRIC_UNITS,
    MetricProfile,
    get_profile,
)
from pipeline.evaluate.provenance import (
    checkpoint_info,
    denoise_rows,
    guardrail_row,
    now_utc,
    package_versions,
)
from pipeline.evaluate.task import Geometry, find_inserts
from pipeline.io.hu import stored_value_hu
from pipeline.io.volume import CTVolume
from pipeline.records import tile_fields_of
from pipeline.utils.files import atomic_path, atomic_write_text
from pipeline.utils.progress import progress

if TYPE_CHECKING:
    from pipeline.report.pseudonym import Pseudonymizer

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TABLES = (
    "per_slice", "per_patient", "cohort", "tests", "roi", "qa", "nps", "inserts", "guardrails",
)  # fmt: skip
TABLES_ARTIFACTS = ("artifact_slices", "artifacts")


@dataclass
class EvaluationResult:
    tables: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    out: Path
    problems: list[str] = field(default_factory=list)
    #: the evaluated items by patient (pseudonym when pseudonymising): ``ldct qa`` hands them to
    #: the report, which then reads the same series without a record of their folders
    items: dict[str, EvalItem] = field(default_factory=dict)


def read_item(item: EvalItem) -> dict[str, CTVolume]:
    """Read the series of one evaluation item (roles low, full, denoised as present)."""
    from pipeline.io.read import read_series

    return {role: read_series(rec) for role, rec in item.records().items()}


def load_aligned(item: EvalItem) -> dict[str, CTVolume]:
    """Read an item's series and align them to the low-dose slice order (the report uses this)."""
    return align(item.patient, read_item(item), full_same_frame=item.full_same_frame)


def align(
    patient: str, vols: dict[str, CTVolume], *, full_same_frame: bool = True
) -> dict[str, CTVolume]:
    """Reorder ``full``/``denoised`` slices to the low-dose order; DatasetError if misaligned."""
    out = {"low": vols["low"]}
    for role in [r for r in vols if r != "low"]:
        if role in vols:
            spec = PairSpec(patient, low=Path("low"), full=Path(role), layout="memory", tag="")
            same = full_same_frame if role == "full" else True
            pair = pair_volumes(spec, vols["low"], vols[role], require_same_frame_of_reference=same)
            out[role] = pair.full
    return out


def stored_padding_hu(vol: CTVolume) -> np.ndarray:
    """HU with padding pixels at the file's stored padding value (PixelPaddingValue rescaled).

    The reader maps padding to air (``AIR_HU``); LDCT-Bench computes on ``pixel_array`` as
    stored, so its profiles see the padding value itself. Unchanged when the series has no
    padding mask or no PixelPaddingValue (then the stored value is not known).
    """
    pad = vol.meta.get("PixelPaddingValue")
    if vol.padding_mask is None or pad is None or not vol.slices:
        return vol.hu
    s = vol.slices[0]
    value = stored_value_hu(pad, s.rescale_slope, s.rescale_intercept)
    return np.where(vol.padding_mask, np.float32(value), vol.hu)


def slice_metrics(
    patient: str,
    vols: dict[str, CTVolume],
    body: np.ndarray,
    profiles: list[MetricProfile],
    positions_mm: np.ndarray,
    uid: Callable[[str], str] = str,
) -> pd.DataFrame:
    """Tidy per-slice rows for every comparison against ``full`` and every profile
    (``uid`` maps the full-dose SOPInstanceUIDs: the pseudonymiser's, when pseudonymising)."""
    if "full" not in vols:
        return pd.DataFrame(columns=stats.SLICE_COLUMNS)
    full = vols["full"]
    sop = [uid(s.sop_instance_uid) for s in full.slices] or [""] * full.hu.shape[0]
    frames = []
    idx = np.arange(full.hu.shape[0])
    for role in [r for r in vols if r != "full"]:
        air = [p for p in profiles if p.padding == "air"]
        stored = [p for p in profiles if p.padding == "stored"]
        values = compute_profiles(vols[role].hu, full.hu, air, body) if air else {}
        if stored:
            values.update(
                compute_profiles(
                    stored_padding_hu(vols[role]), stored_padding_hu(full), stored, body
                )
            )
        for (prof, metric), v in values.items():
            frames.append(
                pd.DataFrame(
                    {
                        "patient": patient,
                        "slice_index": idx,
                        "z_mm": positions_mm[idx],
                        "sop_instance_uid": sop,
                        "comparison": f"{role}_vs_full",
                        "profile": prof,
                        "metric": metric,
                        "value": v,
                        "unit": METRIC_UNITS[metric],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)[stats.SLICE_COLUMNS]


def evaluate(
    low: str | Path,
    out: str | Path,
    *,
    full: str | Path | None = None,
    denoised: str | Path | None = None,
    profiles: list[str] | tuple[str, ...] = DEFAULT_PROFILES,
    tile_stride_px: int | None = None,
    thresholds: ArtifactThresholds = DEFAULT_THRESHOLDS,
    checkpoint: str | Path | None = None,
    command: str = "",
    ignore_frame_of_reference: bool = False,
    baselines: Mapping[str, str | Path] | None = None,
    pseudo: Pseudonymizer | None = None,
) -> EvaluationResult:
    """Evaluate a cohort (or one series) and write all tables + summary.json under ``out``.

    ``pseudo`` (``--pseudonymize``): every identifier is mapped where it is produced: patient
    keys (pairing), UIDs (per_slice rows, summary.json patients), problems and log lines; input
    paths and the command's arguments are withheld from summary.json (docs/evaluation.md).
    """
    ps = pseudonyms(pseudo)
    profs = [get_profile(p) for p in profiles]
    out_dir = Path(out)
    pairing = pair_inputs(
        low, full, denoised, ignore_frame_of_reference=ignore_frame_of_reference, pseudo=ps
    )
    problems = list(pairing.problems)
    baselines = check_baseline_names(baselines or {})
    for name, path in baselines.items():
        attach_baseline(pairing.items, name, Path(path), problems, ps)
    manifest = denoise_rows(Path(denoised) if denoised is not None else None)
    ckpt = checkpoint_info(Path(checkpoint) if checkpoint else None)
    rows: dict[str, list[Any]] = {k: [] for k in (*TABLES, *TABLES_ARTIFACTS)}
    patients_info: list[dict[str, Any]] = []
    models: dict[str, dict[str, Any]] = {}
    for item in progress(pairing.items, desc="evaluate", total=len(pairing.items)):
        try:
            vols = load_aligned(item)
        except LdctError as exc:
            problems.append(f"{item.patient}: {skip_reason(exc, ps)}")
            log.warning("%s: skipped: %s", item.patient, skip_reason(exc, ps))
            continue
        tiling = _tiling_for(item, manifest, tile_stride_px)
        if tiling.mrow:
            models[item.patient] = {k: tiling.mrow.get(k) for k in _MODEL_KEYS}
        ctx = _PatientRun(profs, ps, tiling, thresholds, tile_stride_px, ckpt)
        patients_info.append(_patient_rows(item, vols, rows, ctx))
    if not patients_info:
        raise LdctError("no patient could be evaluated: " + "; ".join(problems))
    tables = _build_tables(rows)
    inputs = {
        "full": ps.path(_s(full)),
        "low": ps.path(_s(low)),
        "denoised": ps.path(_s(denoised)),
        "baselines": {k: ps.path(_s(v)) for k, v in baselines.items()},
    }
    summary = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": now_utc(),
        "command": command,
        "pseudonymization": ps.describe(),
        "inputs": inputs,
        "mode": "full-reference" if full is not None else "no-reference",
        "pairing_rule": pairing.rule,
        "ignore_frame_of_reference": bool(ignore_frame_of_reference),
        "profiles": {p.name: p.describe() for p in profs},
        "patients": patients_info,
        **_table_summary(tables),
        "thresholds": thresholds.__dict__,
        "provenance": {"models": models, **ckpt, "packages": package_versions()},
        "tables": {k: [f"{k}.csv", f"{k}.parquet"] for k in tables},
        "problems": problems,
    }
    write_outputs(out_dir, tables, summary)
    done = {str(p["patient"]) for p in patients_info}
    items = {it.patient: it for it in pairing.items if it.patient in done}
    return EvaluationResult(tables, summary, out_dir, problems, items)


#: manifest fields of the model that denoised a series, recorded in summary.json
_MODEL_KEYS = (
    "model_name",
    "model_sha256",
    "precision",
    "tiling",
    "tile_size_px",
    "tile_stride_px",
    "tile_overlap_px",
    "review_reasons",
    "vgg_weights",
)


@dataclass(frozen=True)
class _Tiling:
    """How a denoised series was tiled, from its denoise manifest row (``mrow``)."""

    stride: int | None
    tile: int | None
    #: the manifest says no tiling -> no tile seams possible
    whole_slices: bool
    mrow: dict[str, Any]


def _tiling_for(
    item: EvalItem, manifest: dict[str, dict[str, Any]], tile_stride_px: int | None
) -> _Tiling:
    """The tile stride/size the seam detector looks for: ``--tile-stride`` first, else the
    manifest's integer tile fields."""
    stride, tile, whole_slices = tile_stride_px, None, False
    mrow: dict[str, Any] = {}
    if item.denoised is not None:
        mrow = manifest.get(item.denoised.series_uid, {})
        if mrow:
            placed = tile_fields_of(mrow)
            if placed is not None and not placed.whole_slices:
                stride = stride or placed.stride_px
                tile = placed.size_px if not tile_stride_px else None
            whole_slices = placed is not None and placed.whole_slices
    return _Tiling(stride, tile, whole_slices, mrow)


@dataclass(frozen=True)
class _PatientRun:
    """What every patient of one ``evaluate`` call is measured with."""

    profiles: list[MetricProfile]
    ps: Pseudonymizer
    tiling: _Tiling
    thresholds: ArtifactThresholds
    tile_stride_px: int | None
    ckpt: dict[str, Any]


def _patient_rows(
    item: EvalItem, vols: dict[str, CTVolume], rows: dict[str, list[Any]], ctx: _PatientRun
) -> dict[str, Any]:
    """Append one patient's rows to every table of ``rows``; returns its summary.json record."""
    ref = vols.get("full", vols["low"])
    body = body_mask(ref.hu)
    hu = {r: v.hu for r, v in vols.items()}
    px = (float(ref.spacing_mm[1]), float(ref.spacing_mm[2]))
    rows["per_slice"].append(
        slice_metrics(item.patient, vols, body, ctx.profiles, slice_positions_mm(ref), ctx.ps.uid)
    )
    roi, nps, qarows = qa.noise_and_edges(item.patient, hu, body, px)
    inserts = find_inserts(item.low.files[0].path.parent, item.low.series_uid)
    geo = Geometry(
        origin_mm=np.asarray(ref.origin_mm, dtype=np.float64),
        direction=np.asarray(ref.direction, dtype=np.float64),
        spacing_mm=tuple(float(v) for v in ref.spacing_mm),  # type: ignore[arg-type]
        slice_pos_mm=slice_positions_mm(ref),
    )
    rows["inserts"] += qa.task_rows(item.patient, hu, inserts, geo, nps, qarows)
    low_vol = vols["low"]
    rows["guardrails"].append(
        guardrail_row(
            item.patient,
            low_vol.meta,
            low_vol.spacing_mm,
            ctx.tiling.mrow,
            ctx.ckpt.get("training_envelope"),
        )
    )
    rows["roi"] += roi
    rows["nps"] += nps
    rows["qa"] += qarows
    art_s, art_p = qa.grid_artifacts(
        item.patient,
        hu,
        body,
        tile_stride_px=ctx.tiling.stride,
        thresholds=ctx.thresholds,
        check_seams=not (ctx.tiling.whole_slices and ctx.tile_stride_px is None),
        tile_px=ctx.tiling.tile,
    )
    rows["artifact_slices"] += art_s
    rows["artifacts"] += art_p
    return {
        "patient": item.patient,
        "n_slices": int(vols["low"].hu.shape[0]),
        "series": {
            r: ctx.ps.uid(str(v.meta.get("SeriesInstanceUID", ""))) for r, v in vols.items()
        },
        "tile_stride_px": ctx.tiling.stride,
        # series folders (paths: they can name the patient) only when not pseudonymising
        **({} if ctx.ps.enabled else item.to_record()),
    }


def _table_summary(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The headline (cohort) and artifact entries of summary.json."""
    return {
        "headline": tables["cohort"].to_dict(orient="records"),
        "artifacts": tables["artifacts"].to_dict(orient="records"),
    }


def skip_reason(exc: LdctError, ps: Pseudonymizer) -> str:
    """Why a patient was skipped: the error, or when pseudonymising only its kind (a reader's or
    aligner's message names input files and UIDs that the pseudonymiser never saw)."""
    if not ps.enabled:
        return str(exc)
    return (
        f"{type(exc).__name__} while reading or aligning its series (details withheld "
        "in a pseudonymised run; run without --pseudonymize to read them)"
    )


def baseline_name(path: str | Path) -> str:
    """A baseline's name: its denoise manifest's model (bm3d, nlm), else the folder name."""
    rows = denoise_rows(Path(path))
    names = {str(r.get("model_name")) for r in rows.values() if r.get("model_name")}
    return names.pop() if len(names) == 1 else Path(path).name


def check_baseline_names(baselines: Mapping[str, str | Path]) -> dict[str, str | Path]:
    """Names must be unique and differ from the roles low/full/denoised."""
    for name in baselines:
        if name in RESERVED_ROLES or not name or "_vs_" in name:
            raise ConfigError(
                f"baseline name {name!r} is reserved or invalid (not low/full/denoised, no '_vs_')"
            )
    return dict(baselines)


def _s(p: str | Path | None) -> str | None:
    return str(Path(p).resolve()) if p is not None else None


def _build_tables(rows: dict[str, list[Any]]) -> dict[str, pd.DataFrame]:
    frames = [f for f in rows["per_slice"] if len(f)]
    per_slice = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=stats.SLICE_COLUMNS)
    )
    per_patient = stats.per_patient(per_slice)
    tables = {
        "per_slice": per_slice,
        "per_patient": per_patient,
        "cohort": stats.cohort(per_patient),
        "tests": stats.paired_tests(per_slice, per_patient),
        "roi": pd.DataFrame(rows["roi"]),
        "qa": pd.DataFrame(rows["qa"]),
        "nps": pd.DataFrame(rows["nps"]),
        "inserts": pd.DataFrame(rows["inserts"], columns=INSERT_COLUMNS),
        "guardrails": pd.DataFrame(rows["guardrails"]),
    }
    if rows["artifacts"]:
        tables["artifact_slices"] = pd.DataFrame(rows["artifact_slices"])
        tables["artifacts"] = pd.DataFrame(rows["artifacts"])
    else:
        tables["artifacts"] = pd.DataFrame(
            columns=["patient", "residual", "n_slices", "n_flagged", "fraction_flagged",
                     "flagged", "evidence", "top_period_px", "top_axis", "median_score_db",
                     "max_seam_z"]
        )  # fmt: skip
    return tables


INSERT_COLUMNS = [
    "patient", "insert", "role", "radius_mm", "contrast_hu", "col_px", "row_px", "normal_mm",
    "n_slices_used",
    "fitted_contrast_hu", "psf_sd_mm", "psf_sd_rel_se", "ttf50_cyc_mm", "cnr",
    "dprime_npw", "dprime_npwe",
]  # fmt: skip


def write_outputs(out: Path, tables: dict[str, pd.DataFrame], summary: dict[str, Any]) -> None:
    """Write every table as CSV and Parquet plus summary.json (each file atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        with atomic_path(out / f"{name}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
    text = json.dumps(_finite(summary), indent=1, default=_json_default, allow_nan=False)
    atomic_write_text(out / "summary.json", text)


def _finite(o: Any) -> Any:
    """NaN/inf -> None so summary.json is strict JSON."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)) and not np.isfinite(o):
        return None
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
