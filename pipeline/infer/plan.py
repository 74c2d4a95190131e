"""What ``ldct denoise`` will do: discovered series, selection rules, shards and output paths.

Output folders are named from hashes of validated UIDs only
(``OUT/dicom/st-<hash>/se-<hash>-<model>`` for the DICOM files, the same relative path under
``OUT/series`` for the marker and NIfTI), never from PatientID or other free text, and every
path is checked to stay inside ``OUT``.
An output folder inside an input folder (or the reverse) is refused: a rerun would read its own
outputs. The same plan, printed by ``--dry-run``, drives the real run.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError
from pipeline.infer.config import DenoiseConfig, SelectionRules
from pipeline.infer.publish import DICOM_DIR, RECORD_DIR
from pipeline.io.suspect import record_flags
from pipeline.utils.files import ensure_inside, is_within

if TYPE_CHECKING:
    from pipeline.io.discover import SeriesRecord, SkippedFile

#: How every derived series written by ``ldct denoise`` starts its DerivationDescription.
OWN_DERIVATION_PREFIX = "Denoised by ldct-pipeline"
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _h(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def valid_uid(uid: str) -> bool:
    """True for a syntactically valid DICOM UID (digits and dots, at most 64 characters)."""
    return 0 < len(uid) <= 64 and bool(_UID_RE.match(uid))


@dataclass(frozen=True)
class SeriesFacts:
    """The header facts of a discovered series that planning needs (no pixel data)."""

    study_uid: str
    series_uid: str
    split: str  # distinguishes sub-series split from one SeriesInstanceUID ("" if none)
    modality: str
    description: str
    image_type: tuple[str, ...]
    derivation: str  # DerivationDescription ("" if absent)
    n_slices: int
    rows: int
    columns: int
    files: tuple[Path, ...]
    #: suspect-input flags (lossy compression, missing Type 1 attributes; pipeline.io.suspect)
    flags: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Stable identity of the series (hash of its UIDs and split)."""
        return _h(f"{self.study_uid}|{self.series_uid}|{self.split}", 16)

    @property
    def folder(self) -> Path:
        """The deepest folder holding all of the series' files (for the manifest)."""
        parents = [p.parent for p in self.files]
        common = parents[0]
        while not all(is_within(p, common) for p in parents):
            common = common.parent
        return common


def facts_of(record: SeriesRecord) -> SeriesFacts:
    """Extract :class:`SeriesFacts` from a discovered series (headers only)."""
    first = record.files[0].header
    image_type = first.get("ImageType") or ()
    if isinstance(image_type, str):
        image_type = image_type.split("\\")
    n_slices, rows, columns = record.shape
    return SeriesFacts(
        study_uid=str(record.study_uid),
        series_uid=str(record.series_uid),
        split=str(record.part or ""),
        modality=str(first.get("Modality") or "").strip().upper(),
        description=record.description,
        image_type=tuple(str(v).strip().upper() for v in image_type),
        derivation=str(first.get("DerivationDescription") or ""),
        n_slices=n_slices,
        rows=rows,
        columns=columns,
        files=tuple(fh.path for fh in record.files),
        flags=tuple(record_flags(record.files)),
    )


def select(facts: SeriesFacts, rules: SelectionRules) -> str:
    """Empty string if the series is selected, else the reason it is skipped."""
    if facts.modality not in rules.modalities:
        return f"modality {facts.modality or '(none)'} not in {rules.modalities}"
    if facts.n_slices < rules.min_slices:
        return f"{facts.n_slices} slice(s) < min_slices {rules.min_slices}"
    if min(facts.rows, facts.columns) < rules.min_matrix:
        return f"matrix {facts.rows}x{facts.columns} smaller than min_matrix {rules.min_matrix}"
    desc = facts.description
    for pat in rules.exclude_descriptions:
        if re.search(pat, desc, flags=re.IGNORECASE):
            return f"SeriesDescription {desc!r} matches exclude rule {pat!r}"
    if rules.include_descriptions and not any(
        re.search(p, desc, flags=re.IGNORECASE) for p in rules.include_descriptions
    ):
        return f"SeriesDescription {desc!r} matches no include rule"
    if rules.skip_own_outputs and facts.derivation.startswith(OWN_DERIVATION_PREFIX):
        return "already a denoised output of ldct-pipeline (skip_own_outputs rule)"
    if rules.skip_derived and facts.image_type[:1] == ("DERIVED",):
        return "ImageType is DERIVED (skip_derived rule)"
    return ""


def shard_of(key: str, count: int) -> int:
    """Deterministic shard (0..count-1) of a series key."""
    return int(_h(f"shard|{key}", 12), 16) % count


@dataclass
class PlanItem:
    """One discovered series and what will happen to it."""

    record: Any
    facts: SeriesFacts
    skip_reason: str  # "" = selected
    shard: int
    out_dir: Path  # the DICOM folder, OUT/dicom/<rel>
    fingerprint: str
    record_dir: Path = Path()  # marker + NIfTI, OUT/series/<rel>

    @property
    def selected(self) -> bool:
        return not self.skip_reason


@dataclass
class Plan:
    """Every discovered series (selected or not), files skipped by discovery, and the rules."""

    out_root: Path
    items: list[PlanItem]
    skipped_files: list[SkippedFile]
    rules: SelectionRules
    shard_index: int = 0
    shard_count: int = 1
    notes: list[str] = field(default_factory=list)
    #: series of which every file was skipped at scan (reported as failed, never dropped)
    lost_series: list[Any] = field(default_factory=list)

    def mine(self) -> list[PlanItem]:
        """Items of this process's shard (selected or not: each shard reports its own)."""
        return [i for i in self.items if i.shard == self.shard_index]


def check_paths(inputs: list[Path], out_root: Path) -> None:
    """Refuse an output folder inside an input folder, an input inside OUT, or missing inputs."""
    for inp in inputs:
        if not inp.exists():
            raise ConfigError(f"input {inp} does not exist")
        if inp.is_dir() and is_within(out_root, inp):
            raise ConfigError(
                f"output folder {out_root} is inside input folder {inp}; choose an output "
                "folder outside every input (a rerun would read its own outputs)"
            )
        if is_within(inp, out_root):
            raise ConfigError(f"input {inp} is inside the output folder {out_root}")


def deid_fingerprint() -> str:
    """Digest of the de-identification key (another key gives other UIDs: redo the series)."""
    import os

    from pipeline.io.deid import key_fingerprint
    from pipeline.report.pseudonym import ENV_KEY

    return key_fingerprint(os.environ.get(ENV_KEY, ""))


def fingerprint(facts: SeriesFacts, model_sha256: str, cfg: DenoiseConfig) -> str:
    """Hash of the input files (path, size, mtime), the model and the output options."""
    files = []
    for p in sorted(facts.files):
        st = p.stat()
        files.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    blob = {
        "key": facts.key,
        "model": model_sha256,
        "format": cfg.format.value,
        "transfer_syntax": cfg.output.transfer_syntax.value,
        "deidentify": deid_fingerprint() if cfg.output.deidentify else "",
        "precision": cfg.precision,
        "suffix": cfg.description_suffix,
        "files": files,
    }
    return _h(json.dumps(blob, sort_keys=True), 32)


def series_rel(facts: SeriesFacts, model_sha256: str) -> Path:
    """``st-<study hash>/se-<series key>-<model hash>``: hashes only."""
    study = _h(facts.study_uid if valid_uid(facts.study_uid) else f"invalid|{facts.study_uid}")
    return Path(f"st-{study}") / f"se-{facts.key}-{model_sha256[:8] or 'nomodel'}"


def output_dir(out_root: Path, facts: SeriesFacts, model_sha256: str) -> Path:
    """The series' DICOM folder ``OUT/dicom/st-<study hash>/se-<key>-<model hash>``."""
    return ensure_inside(out_root, out_root / DICOM_DIR / series_rel(facts, model_sha256))


def record_dir(out_root: Path, facts: SeriesFacts, model_sha256: str) -> Path:
    """The series' marker/NIfTI folder ``OUT/series/st-<study hash>/se-<key>-<model hash>``."""
    return ensure_inside(out_root, out_root / RECORD_DIR / series_rel(facts, model_sha256))


def build_plan(
    records: list[SeriesRecord],
    skipped_files: list[SkippedFile],
    out_root: Path,
    cfg: DenoiseConfig,
    model_sha256: str,
    shard: tuple[int, int] = (0, 1),
    lost_series: list[Any] | None = None,
) -> Plan:
    """Apply the selection rules and the shard split; name every output."""
    out_root = out_root.resolve()
    items: list[PlanItem] = []
    seen: set[str] = set()
    for rec in records:
        facts = facts_of(rec)
        reason = select(facts, cfg.selection)
        if not reason and facts.key in seen:
            reason = "duplicate of another discovered series (same UIDs)"
        seen.add(facts.key)
        items.append(
            PlanItem(
                record=rec,
                facts=facts,
                skip_reason=reason,
                shard=shard_of(facts.key, shard[1]),
                out_dir=output_dir(out_root, facts, model_sha256),
                fingerprint=fingerprint(facts, model_sha256, cfg),
                record_dir=record_dir(out_root, facts, model_sha256),
            )
        )
    items.sort(key=lambda i: (str(i.facts.folder), i.facts.key))
    return Plan(
        out_root, items, skipped_files, cfg.selection, shard[0], shard[1],
        lost_series=list(lost_series or []),
    )  # fmt: skip
