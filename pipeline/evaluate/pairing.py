"""Which series are compared with which: the pairing rule of ``ldct evaluate``.

Input roles: ``low`` (the denoiser's input, required), ``full`` (reference, optional) and
``denoised`` (optional). Each is a folder (a single series, or a tree of any depth) or, for
``low``/``full`` together, a dataset root.

1. **low <-> full.** If ``full`` and ``low`` are the same path, it is a dataset root or a
   manifest read by :func:`pipeline.data.pairs.discover_pairs` (demo ``<patient>/{full_dose,
   quarter_dose}``, Mayo, TCIA layouts); the layout vouches for the pairing, so differing
   FrameOfReferenceUIDs are accepted there (geometry and positions are still checked).
   Otherwise both trees are scanned and each low-dose series is paired with the full-dose
   series of the same PatientID and FrameOfReferenceUID (the same StudyInstanceUID breaks
   ties); when each tree holds exactly one series they are paired directly.
2. **denoised <-> low.** A denoised series belongs to the low-dose series whose SOP instances
   its SourceImageSequence references (as ``ldct denoise`` writes them); series without that
   reference fall back to the same PatientID + FrameOfReferenceUID + slice count.
3. The read volumes are then validated with :func:`pipeline.data.pairs.pair_volumes` (same
   in-plane geometry, slices matched by position within 0.1 mm), for low/full and denoised/low.

Anything that cannot be paired is reported in ``problems`` (and in summary.json), not guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import DatasetError
from pipeline.io.discover import SeriesRecord, scan
from pipeline.utils.text import printable

if TYPE_CHECKING:
    from pipeline.report.pseudonym import Pseudonymizer

log = logging.getLogger(__name__)


@dataclass
class EvalItem:
    """One patient's series to evaluate (headers only; pixels are read later)."""

    patient: str
    low: SeriesRecord
    full: SeriesRecord | None = None
    denoised: SeriesRecord | None = None
    #: False when a dataset layout (folder names) pairs low/full: their FrameOfReferenceUIDs may
    #: differ (separately written series); slice positions and geometry are still verified.
    full_same_frame: bool = True
    #: baseline denoisers' series of this low-dose series (``ldct denoise --model bm3d|nlm``),
    #: by baseline name
    baselines: dict[str, SeriesRecord] = field(default_factory=dict)

    def records(self) -> dict[str, SeriesRecord]:
        """The item's series by role: low, full, denoised (as present), then the baselines."""
        roles = {"low": self.low, "full": self.full, "denoised": self.denoised}
        return {**{r: s for r, s in roles.items() if s is not None}, **self.baselines}

    def to_record(self) -> dict[str, Any]:
        """What summary.json keeps to find these series again without a scan of the inputs:
        per role the folders holding its files, its SeriesInstanceUID and split part."""
        return {
            "full_same_frame": self.full_same_frame,
            "series_folders": {
                role: {
                    "folders": sorted({str(fh.path.parent.resolve()) for fh in rec.files}),
                    "series_uid": rec.series_uid,
                    "part": rec.part,
                }
                for role, rec in self.records().items()
            },
        }

    @classmethod
    def from_record(cls, patient: str, record: Mapping[str, Any]) -> EvalItem:
        """The item :meth:`to_record` described: only the files directly in the recorded folders
        are read (headers), never the input trees; DatasetError when a series is gone."""
        folders = record.get("series_folders")
        if not isinstance(folders, Mapping) or "low" not in folders:
            raise DatasetError(f"{patient}: summary.json records no series folders")
        recs = {role: _series_in_folders(patient, role, entry) for role, entry in folders.items()}
        low, full, den = recs.pop("low"), recs.pop("full", None), recs.pop("denoised", None)
        same = bool(record.get("full_same_frame", True))
        return cls(patient, low, full, den, full_same_frame=same, baselines=recs)


def _series_in_folders(patient: str, role: str, entry: Mapping[str, Any]) -> SeriesRecord:
    uid, part = str(entry.get("series_uid") or ""), entry.get("part")
    files: list[Path] = []
    for folder in map(Path, entry.get("folders") or []):
        if not folder.is_dir():
            raise DatasetError(f"{patient}: the {role} series folder no longer exists", path=folder)
        files += sorted(p for p in folder.iterdir() if p.is_file())
    found = [s for s in scan(files).series if s.series_uid == uid and s.part == part]
    if len(found) != 1:
        where = ", ".join(entry.get("folders") or []) or "no folder recorded"
        raise DatasetError(f"{patient}: {role} series {uid} not found in its folder ({where})")
    return found[0]


@dataclass
class Pairing:
    items: list[EvalItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rule: str = ""


def pseudonyms(pseudo: Pseudonymizer | None) -> Pseudonymizer:
    """``pseudo``, or the identity (no pseudonymisation) when None."""
    from pipeline.report.pseudonym import Pseudonymizer

    return pseudo if pseudo is not None else Pseudonymizer(False)


def _label(rec: SeriesRecord, ps: Pseudonymizer) -> str:
    """The series as problems name it: its (pseudonymised) SeriesInstanceUID and part."""
    uid = ps.uid(rec.series_uid)
    return uid if rec.part is None else f"{uid} (part {rec.part})"


def _hdr(rec: SeriesRecord, name: str) -> str:
    value = rec.files[0].header.get(name, "")
    return "" if value is None else str(value)


def _sop_uids(rec: SeriesRecord) -> set[str]:
    return {f.sop_instance_uid for f in rec.frames}


def _source_uids(rec: SeriesRecord) -> set[str]:
    out: set[str] = set()
    for fr in rec.frames:
        seq = getattr(fr.header, "SourceImageSequence", None) or []
        for item in seq:
            uid = getattr(item, "ReferencedSOPInstanceUID", None)
            if uid:
                out.add(str(uid))
    return out


def _scan_series(path: Path, role: str) -> list[SeriesRecord]:
    if not path.exists():
        raise DatasetError(f"--{role}: path does not exist", path=path)
    result = scan([path])
    if not result.series:
        raise DatasetError(f"--{role}: no readable CT series found", path=path)
    return result.series


def _pair_low_full(
    lows: list[SeriesRecord],
    fulls: list[SeriesRecord],
    problems: list[str],
    ignore_frame: bool = False,
    ps: Pseudonymizer | None = None,
) -> list[EvalItem]:
    ps = pseudonyms(ps)
    same = not ignore_frame
    if len(lows) == 1 and len(fulls) == 1:
        pid = _hdr(lows[0], "PatientID") or "patient"
        return [EvalItem(pid, lows[0], fulls[0], full_same_frame=same)]
    items: list[EvalItem] = []
    for low in lows:
        pid, frame = _hdr(low, "PatientID"), _hdr(low, "FrameOfReferenceUID")
        cands = [
            f
            for f in fulls
            if _hdr(f, "PatientID") == pid
            and (ignore_frame or not frame or _hdr(f, "FrameOfReferenceUID") in ("", frame))
        ]
        if len(cands) > 1:
            same_study = [f for f in cands if f.study_uid == low.study_uid]
            cands = same_study or cands
        if len(cands) != 1:
            what = "no" if not cands else f"{len(cands)} candidate"
            key = "PatientID" if ignore_frame else "PatientID and FrameOfReferenceUID"
            hint = "" if ignore_frame else " (--ignore-frame-of-reference pairs by PatientID)"
            problems.append(
                f"low-dose series {_label(low, ps)} (PatientID {ps(pid)!r}): {what} full-dose "
                "series "
                f"with the same {key}{hint}; skipped"
            )
            continue
        items.append(EvalItem(pid or low.series_uid, low, cands[0], full_same_frame=same))
    return items


def _attach_denoised(
    items: list[EvalItem], dens: list[SeriesRecord], problems: list[str], ps: Pseudonymizer
) -> None:
    by_sop = {uid: it for it in items for uid in _sop_uids(it.low)}
    unmatched: list[SeriesRecord] = []
    for den in dens:
        refs = _source_uids(den)
        owners = {id(by_sop[u]): by_sop[u] for u in refs if u in by_sop}
        if len(owners) == 1:
            it = next(iter(owners.values()))
            if it.denoised is not None:
                problems.append(
                    f"{ps(it.patient)}: several denoised series reference the same low-dose "
                    f"series ({_label(it.denoised, ps)}, {_label(den, ps)}); kept the first"
                )
                continue
            it.denoised = den
        else:
            unmatched.append(den)
    for den in unmatched:
        pid, frame = _hdr(den, "PatientID"), _hdr(den, "FrameOfReferenceUID")
        cands = [
            it
            for it in items
            if it.denoised is None
            and _hdr(it.low, "PatientID") == pid
            and _hdr(it.low, "FrameOfReferenceUID") == frame
            and it.low.n_slices == den.n_slices
        ]
        if len(cands) == 1:
            cands[0].denoised = den
        elif len(items) == 1 and len(dens) == 1 and items[0].denoised is None:
            items[0].denoised = den
        else:
            problems.append(
                f"denoised series {_label(den, ps)} (PatientID {ps(pid)!r}): no unique low-dose "
                "source "
                "(no SourceImageSequence match, fallback found "
                f"{len(cands)} candidates); skipped"
            )
    for it in items:
        if it.denoised is None:
            problems.append(f"{ps(it.patient)}: no denoised series found for the low-dose series")


RESERVED_ROLES = ("low", "full", "denoised")


def attach_baseline(
    items: list[EvalItem],
    name: str,
    path: Path,
    problems: list[str],
    pseudo: Pseudonymizer | None = None,
) -> None:
    """Baseline series of ``path`` to the low-dose series they were made from.

    As for ``--denoised``: by SourceImageSequence -> low-dose SOP instances (what ``ldct
    denoise`` writes); a low-dose series without a baseline series is listed in ``problems``
    (items' patients are already pseudonymised by :func:`pair_inputs`; series by ``pseudo``).
    """
    ps = pseudonyms(pseudo)
    by_sop = {uid: it for it in items for uid in _sop_uids(it.low)}
    for rec in _scan_series(path, f"baseline {name}"):
        owners = {id(by_sop[u]): by_sop[u] for u in _source_uids(rec) if u in by_sop}
        if len(owners) == 1:
            it = next(iter(owners.values()))
            it.baselines.setdefault(name, rec)
        else:
            problems.append(
                f"baseline {name}: series {_label(rec, ps)} matches no unique low-dose series"
            )
    for it in items:
        if name not in it.baselines:
            problems.append(f"{it.patient}: no {name} baseline series found")


def pair_inputs(
    low: str | Path,
    full: str | Path | None = None,
    denoised: str | Path | None = None,
    *,
    ignore_frame_of_reference: bool = False,
    pseudo: Pseudonymizer | None = None,
) -> Pairing:
    """Apply the pairing rule (module docstring) to the three inputs.

    ``ignore_frame_of_reference`` (CLI ``--ignore-frame-of-reference``): low and full series
    acquired separately carry their own FrameOfReferenceUID; pair them by PatientID (study
    breaks ties) and accept the differing UIDs. Geometry and slice positions are still checked.

    ``pseudo`` (``--pseudonymize``): the items' patient keys and every identifier in
    ``problems`` (and in the log lines) are its pseudonyms.
    """
    ps = pseudonyms(pseudo)
    low_p = Path(low)
    full_p = Path(full) if full is not None else None
    problems: list[str] = []
    if full_p is not None and full_p.resolve() == low_p.resolve():
        from pipeline.data.pairs import discover_pairs

        items = []
        for spec in discover_pairs(low_p, strict=False):
            lows, fulls = _scan_series(spec.low, "low"), _scan_series(spec.full, "full")
            if len(lows) != 1 or len(fulls) != 1:
                problems.append(f"{ps(spec.name)}: expected one series per dose folder; skipped")
                continue
            items.append(EvalItem(spec.name, lows[0], fulls[0], full_same_frame=False))
        rule = "dataset layout (pipeline.data.pairs.discover_pairs)"
    elif full_p is not None:
        items = _pair_low_full(
            _scan_series(low_p, "low"),
            _scan_series(full_p, "full"),
            problems,
            ignore_frame=ignore_frame_of_reference,
            ps=ps,
        )
        rule = (
            "PatientID (StudyInstanceUID breaks ties); FrameOfReferenceUID ignored "
            "(--ignore-frame-of-reference)"
            if ignore_frame_of_reference
            else "PatientID + FrameOfReferenceUID (StudyInstanceUID breaks ties)"
        )
    else:
        items = [
            EvalItem(_hdr(r, "PatientID") or r.series_uid, r) for r in _scan_series(low_p, "low")
        ]
        rule = "no reference: every low-dose series"
    if denoised is not None:
        _attach_denoised(items, _scan_series(Path(denoised), "denoised"), problems, ps)
        rule += "; denoised by SourceImageSequence -> low-dose SOP instances"
    names = [it.patient for it in items]
    for it in items:
        if names.count(it.patient) > 1:
            it.patient = f"{it.patient}/{it.low.series_uid[-8:]}"
    for it in items:  # a folder name or tag may hold any bytes: the written name is printable
        it.patient = ps(it.patient) if ps.enabled else printable(it.patient)
    if not items:
        raise DatasetError("nothing to evaluate: " + ("; ".join(problems) or "no series paired"))
    for p in problems:
        log.warning("%s", p)
    return Pairing(items, problems, rule)
