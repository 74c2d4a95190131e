"""Find low/full-dose pairs in the folder layouts users actually have.

Recognised, per patient folder ``ROOT/<patient>/``:

* **demo** (``ldct demo-data``): ``full_dose/`` + ``quarter_dose/`` (or ``half_dose``,
  ``tenth_dose``, ``dose_<pct>pct``, ``low_dose``); several low doses give one pair each;
* **mayo** (2016 Grand Challenge): ``full_3mm/`` + ``quarter_3mm/``,
  ``full_1mm/`` + ``quarter_1mm/`` (also suffixed variants such as ``full_3mm_sharp``);
  each thickness is its own pair (tag);
* **tcia** (LDCT-and-Projection-data as the NBIA retriever saves it,
  ``<patient>/<study>/<series>/*.dcm``): series whose SeriesDescription (read from the first
  file's header, else the folder name) says "Full Dose" vs "Low Dose"/"Quarter Dose", paired within
  the study; projection series are ignored.

A CSV/YAML/JSON file is read as a manifest (:mod:`pipeline.data.manifest`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data.manifest import MANIFEST_SUFFIXES, read_manifest
from pipeline.data.spec import PairSpec
from pipeline.errors import DatasetError

log = logging.getLogger(__name__)

_SIDECAR_SUFFIXES = {".json", ".txt", ".csv", ".yaml", ".yml", ".md", ".xlsx", ".xml", ".html"}
_MAYO_RE = re.compile(r"^(quarter|full)_(\d+(?:\.\d+)?mm)(_[a-z0-9]+)?$")
_TCIA_TOP = "ldct-and-projection-data"
_DEMO_NAMED = {"quarter_dose": 0.25, "half_dose": 0.5, "tenth_dose": 0.1, "low_dose": None}
_DEMO_PCT_RE = re.compile(r"^dose_(\d+(?:p\d+)?)pct$")


@dataclass
class PairDiscovery:
    """What a scan found: pairs, problems (one line each), and a hint for empty results."""

    pairs: list[PairSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hint: str = (
        "expected <patient>/{full_dose,quarter_dose}, <patient>/{full_3mm,quarter_3mm}, "
        "a TCIA LDCT-and-Projection-data tree, or a CSV/YAML manifest"
    )


def _has_image_files(d: Path) -> bool:
    try:
        return any(
            e.is_file()
            and not e.name.startswith(".")
            and Path(e.name).suffix.lower() not in _SIDECAR_SUFFIXES
            for e in os.scandir(d)
        )
    except OSError:
        return False


def _subdirs(d: Path) -> list[Path]:
    try:
        return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _demo_low_dose(name: str) -> tuple[bool, float | None]:
    """Is ``name`` a demo low-dose folder, and its dose fraction if the name says it."""
    if name in _DEMO_NAMED:
        return True, _DEMO_NAMED[name]
    m = _DEMO_PCT_RE.match(name)
    if m:
        return True, float(m.group(1).replace("p", ".")) / 100.0
    return False, None


def _demo_pairs(patient_dir: Path) -> tuple[list[PairSpec], list[str]] | None:
    names = {p.name.lower(): p for p in _subdirs(patient_dir)}
    lows = [(n, _demo_low_dose(n)[1]) for n in sorted(names) if _demo_low_dose(n)[0]]
    full = names.get("full_dose")
    if full is None and not lows:
        return None
    if full is None or not lows:
        have = "full_dose" if full is not None else lows[0][0]
        return [], [f"{patient_dir.name}: demo layout has {have}/ but not its partner"]
    tagged = len(lows) > 1  # several simulated doses: one pair per dose
    specs = [
        PairSpec(patient_dir.name, names[n], full, dose, "demo", n if tagged else "")
        for n, dose in lows
    ]
    return specs, []


def _mayo_pairs(patient_dir: Path) -> tuple[list[PairSpec], list[str]] | None:
    groups: dict[str, dict[str, Path]] = {}
    for d in _subdirs(patient_dir):
        m = _MAYO_RE.match(d.name.lower())
        if m:
            tag = m.group(2) + (m.group(3) or "")
            groups.setdefault(tag, {})[m.group(1)] = d
    if not groups:
        return None
    pairs, problems = [], []
    for tag in sorted(groups):
        g = groups[tag]
        if set(g) != {"quarter", "full"}:
            have = next(iter(g))
            problems.append(
                f"{patient_dir.name}: mayo layout has {have}_{tag}/ but not its partner"
            )
            continue
        pairs.append(
            PairSpec(patient_dir.name, g["quarter"], g["full"], dose=0.25, layout="mayo", tag=tag)
        )
    if len(pairs) == 1:  # a single thickness needs no tag
        pairs = [PairSpec(p.patient, p.low, p.full, p.dose, p.layout, "") for p in pairs]
    return pairs, problems


def _series_dirs(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        if _has_image_files(Path(dirpath)):
            out.append(Path(dirpath))
    return out


def _describe(series_dir: Path) -> tuple[str, str]:
    """(SeriesDescription, study key) of a series folder from its first readable header."""
    import pydicom

    for entry in sorted(os.scandir(series_dir), key=lambda e: e.name):
        if not entry.is_file() or Path(entry.name).suffix.lower() in _SIDECAR_SUFFIXES:
            continue
        try:
            ds = pydicom.dcmread(
                entry.path,
                stop_before_pixels=True,
                specific_tags=["SeriesDescription", "StudyInstanceUID"],
            )
        except Exception:  # not DICOM: fall back to the folder name
            continue
        desc = str(ds.get("SeriesDescription", "") or "")
        study = str(ds.get("StudyInstanceUID", "") or "")
        return desc or series_dir.name, study or str(series_dir.parent)
    return series_dir.name, str(series_dir.parent)


def _dose_role(description: str) -> tuple[str | None, float | None]:
    d = re.sub(r"[\s_\-]+", " ", description.lower())
    if "projection" in d:
        return None, None
    if "full dose" in d:
        return "full", None
    if "quarter dose" in d:
        return "low", 0.25
    if "low dose" in d:
        return "low", None
    return None, None


def _names(found: list[tuple[Path, float | None]]) -> str:
    return ", ".join(p.name for p, _ in found) or "-"


def _tcia_pairs(patient_dir: Path) -> tuple[list[PairSpec], list[str]] | None:
    by_study: dict[str, dict[str, list[tuple[Path, float | None]]]] = {}
    for sdir in _series_dirs(patient_dir):
        desc, study = _describe(sdir)
        role, dose = _dose_role(desc)
        if role is None:
            role, dose = _dose_role(sdir.name)
        if role is not None:
            by_study.setdefault(study, {}).setdefault(role, []).append((sdir, dose))
    if not by_study:
        return None
    pairs, problems = [], []
    for i, study in enumerate(sorted(by_study)):
        roles = by_study[study]
        lows, fulls = roles.get("low", []), roles.get("full", [])
        if len(lows) != 1 or len(fulls) != 1:
            problems.append(
                f"{patient_dir.name}: study {study}: expected one full-dose and one low-dose image "
                f"series, found {len(fulls)} full ({_names(fulls)}) and "
                f"{len(lows)} low ({_names(lows)})"
            )
            continue
        tag = f"study{i + 1}" if len(by_study) > 1 else ""
        pairs.append(PairSpec(patient_dir.name, lows[0][0], fulls[0][0], lows[0][1], "tcia", tag))
    return pairs, problems


def _patient_dirs(root: Path) -> list[Path]:
    for layout in (_demo_pairs, _mayo_pairs):
        found = layout(root)
        if found is not None and found[0]:
            return [root]  # ROOT is itself one patient's folder
    children = _subdirs(root)
    tcia_top = [c for c in children if c.name.lower() == _TCIA_TOP]
    if tcia_top:
        children = _subdirs(tcia_top[0])
    return children


def scan_pairs(source: Path) -> PairDiscovery:
    """Scan a dataset root (or read a manifest) and report pairs and problems."""
    result = PairDiscovery()
    if source.is_file():
        if source.suffix.lower() not in MANIFEST_SUFFIXES:
            raise DatasetError(
                f"a manifest must be one of {', '.join(MANIFEST_SUFFIXES)}", path=source
            )
        result.pairs, result.problems = read_manifest(source)
        return result
    if not source.is_dir():
        raise DatasetError("dataset root does not exist", path=source)
    for pdir in _patient_dirs(source):
        for layout in (_demo_pairs, _mayo_pairs, _tcia_pairs):
            found = layout(pdir)
            if found is not None:
                result.pairs += found[0]
                result.problems += found[1]
                break
        else:
            if _series_dirs(pdir):
                result.problems.append(
                    f"{pdir.name}: image folders found but no recognised low/full-dose layout"
                )
    names = [p.name for p in result.pairs]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        result.problems.append(f"duplicate pair names: {', '.join(dups)}")
    log.info(
        "found %d pair(s), %d problem(s) under %s", len(result.pairs), len(result.problems), source
    )
    return result
