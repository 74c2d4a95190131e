"""Patient-level train/val/test splits: seeded, reproducible, explicit lists accepted, leak-checked.

Splitting is by patient (never by slice or pair), so two series of one patient always land in
the same split. The split depends only on the *sorted* patient list, the fractions and the seed,
so it does not change with file-system order. Manifests are YAML (``.yaml``/``.yml``) or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.data.pairs import PairSpec
from pipeline.errors import DatasetError
from pipeline.utils.files import atomic_write_text

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Splits:
    """Patients per split plus how the split was made (recorded in the manifest)."""

    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    seed: int | None = None
    method: str = "explicit"

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def split_of(self, patient: str) -> str | None:
        for name, members in self.as_dict().items():
            if patient in members:
                return name
        return None


def check_leakage(splits: Splits, pairs: Sequence[PairSpec] = ()) -> None:
    """Raise DatasetError if a patient, or a series folder/file, belongs to two splits.

    Series are compared by resolved path, which catches one folder listed under two patient
    names (a slice-level leak a patient check alone would miss).
    """
    problems: list[str] = []
    seen: dict[str, str] = {}
    for name, members in splits.as_dict().items():
        dups = sorted({p for p in members if members.count(p) > 1})
        if dups:
            problems.append(f"{name} lists patient(s) twice: {', '.join(dups)}")
        for p in members:
            if p in seen and seen[p] != name:
                problems.append(f"patient {p!r} is in both {seen[p]} and {name}")
            seen.setdefault(p, name)
    owner: dict[Path, tuple[str, str]] = {}
    for spec in pairs:
        split = splits.split_of(spec.patient)
        if split is None:
            continue
        for path in (spec.low, spec.full):
            key = Path(path).resolve()
            prev = owner.get(key)
            if prev is not None and prev[1] != split:
                problems.append(
                    f"series {path} is used by {prev[0]!r} ({prev[1]}) and {spec.name!r} ({split})"
                )
            owner.setdefault(key, (spec.name, split))
    if problems:
        raise DatasetError("split leakage:\n  - " + "\n  - ".join(problems))


def check_slice_leakage(uids_by_split: dict[str, dict[str, Iterable[str]]]) -> None:
    """Raise DatasetError if one SOPInstanceUID (slice) occurs in pairs of two splits.

    ``uids_by_split`` maps split -> pair name -> the pair's SOPInstanceUIDs. This catches a copy
    of a series filed under another patient name, which path and patient checks cannot see.
    """
    owner: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for split, pairs in uids_by_split.items():
        for name, uids in pairs.items():
            clash: dict[tuple[str, str], int] = {}
            for uid in uids:
                prev = owner.setdefault(uid, (name, split))
                if prev[1] != split:
                    clash[prev] = clash.get(prev, 0) + 1
            problems += [
                f"{n} slice(s) of {name!r} ({split}) are also in {other!r} ({other_split})"
                for (other, other_split), n in sorted(clash.items())
            ]
    if problems:
        raise DatasetError("slice leakage across splits:\n  - " + "\n  - ".join(problems))


def make_splits(
    patients: Iterable[str],
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> Splits:
    """Random patient-level split. With >= 3 patients every non-zero fraction gets >= 1 patient."""
    names = sorted(set(patients))
    if not names:
        raise DatasetError("cannot split an empty patient list")
    for label, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise DatasetError(f"{label} must be in [0, 1), found {f}")
    if val_fraction + test_fraction >= 1.0:
        raise DatasetError(
            f"val_fraction + test_fraction must be < 1, found {val_fraction + test_fraction}"
        )
    n = len(names)
    n_val = round(val_fraction * n)
    n_test = round(test_fraction * n)
    if n >= 3:
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
    if n - n_val - n_test < 1:
        raise DatasetError(
            f"{n} patient(s) are too few for val_fraction={val_fraction}, "
            f"test_fraction={test_fraction} (no patient left for training)"
        )
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [names[i] for i in order]
    test = sorted(shuffled[:n_test])
    val = sorted(shuffled[n_test : n_test + n_val])
    train = sorted(shuffled[n_test + n_val :])
    return Splits(train=train, val=val, test=test, seed=seed, method="random")


def explicit_splits(
    train: Sequence[str], val: Sequence[str] = (), test: Sequence[str] = ()
) -> Splits:
    """Splits from given lists (checked for leakage)."""
    s = Splits(train=list(train), val=list(val), test=list(test), method="explicit")
    if not s.train:
        raise DatasetError("explicit splits need at least one training patient")
    check_leakage(s)
    return s


def save_splits(splits: Splits, path: str | Path, pairs: Sequence[PairSpec] = ()) -> Path:
    """Write the split manifest (YAML or JSON by suffix), after a leakage check."""
    check_leakage(splits, pairs)
    p = Path(path)
    data: dict[str, Any] = {
        "version": 1,
        "method": splits.method,
        "seed": splits.seed,
        **splits.as_dict(),
    }
    if pairs:
        data["pairs"] = {
            s.name: {
                "patient": s.patient,
                "split": splits.split_of(s.patient),
                "low": str(s.low),
                "full": str(s.full),
            }
            for s in pairs
        }
    if p.suffix.lower() == ".json":
        text = json.dumps(data, indent=2)
    elif p.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        raise DatasetError("split manifest must end in .yaml, .yml or .json", path=p)
    atomic_write_text(p, text)
    return p


def load_splits(path: str | Path) -> Splits:
    """Read a split manifest written by :func:`save_splits` (or by hand: train/val/test lists)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except OSError as exc:
        raise DatasetError(f"cannot read split manifest ({exc.strerror})", path=p) from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise DatasetError(f"split manifest is not valid: {exc}", path=p) from exc
    if not isinstance(data, dict):
        raise DatasetError("split manifest must be a mapping with train/val/test lists", path=p)
    lists: dict[str, list[str]] = {}
    for name in SPLIT_NAMES:
        value = data.get(name) or []
        if not isinstance(value, list):
            raise DatasetError(f"{name!r} must be a list of patient IDs", path=p)
        lists[name] = [str(v) for v in value]
    s = Splits(**lists, seed=data.get("seed"), method=str(data.get("method", "explicit")))
    check_leakage(s)
    return s


def assign(pairs: Sequence[PairSpec], splits: Splits) -> dict[str, list[PairSpec]]:
    """Pairs per split; every pair's patient must be in exactly one split (else DatasetError)."""
    check_leakage(splits, pairs)
    out: dict[str, list[PairSpec]] = {name: [] for name in SPLIT_NAMES}
    unassigned = sorted({s.patient for s in pairs if splits.split_of(s.patient) is None})
    if unassigned:
        raise DatasetError(
            f"{len(unassigned)} patient(s) are in no split: {', '.join(unassigned)} "
            "(add them to the split manifest or recreate it with `ldct dataset split`)"
        )
    known = {s.patient for s in pairs}
    missing = sorted(p for members in splits.as_dict().values() for p in members if p not in known)
    if missing:
        raise DatasetError(
            f"split manifest names patient(s) not in the dataset: {', '.join(missing)}"
        )
    for spec in pairs:
        split = splits.split_of(spec.patient)
        assert split is not None
        out[split].append(spec)
    return out
