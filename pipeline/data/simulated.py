"""Training pairs from a generated training set (:mod:`pipeline.simulate.trainset`).

The generator writes its entries in the disk layout of :mod:`pipeline.data.cache`, so they open
as a :class:`~pipeline.data.cache.PairStore` of memmaps without decoding anything; the split of
each entry (``train``/``val``, drawn from disjoint seed streams) is recorded in its index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.data.cache import PairInfo, PairStore, _read_entry_info
from pipeline.data.pairs import PairSpec
from pipeline.data.splits import SPLIT_NAMES, Splits
from pipeline.errors import DatasetError


def simulated_pairs(root: str | Path) -> tuple[dict[str, list[PairSpec]], Splits, dict[str, Any]]:
    """Pair specs per split, the splits and the index of the generated set under ``root``."""
    from pipeline.errors import SimulationError
    from pipeline.simulate.trainset import read_trainset

    root = Path(root)
    try:
        index = read_trainset(root)
    except SimulationError as exc:
        raise DatasetError(str(exc), path=root) from exc
    by_split: dict[str, list[PairSpec]] = {name: [] for name in SPLIT_NAMES}
    for e in index["entries"]:
        d = root / e["name"]
        spec = PairSpec(
            patient=e["name"],
            low=d / "low.npy",
            full=d / "full.npy",
            dose=float(e["dose"]),
            layout="simulated",
        )
        by_split[e["split"]].append(spec)
    splits = Splits(
        train=[s.patient for s in by_split["train"]],
        val=[s.patient for s in by_split["val"]],
        method="generated",
    )
    return by_split, splits, index


def simulated_store(specs: list[PairSpec], target: str = "full") -> PairStore:
    """A memmap :class:`PairStore` over generated entries (DatasetError for a broken entry).

    ``target``: ``"full"`` (the simulated full dose) or ``"expected_full"`` (its expectation
    given the low dose, without the full dose's unpredictable noise; the generator's
    ``expected_full.npy``, :mod:`pipeline.simulate.trainset`)."""
    target_file = f"{target}.npy"
    infos: list[PairInfo] = []
    paths: list[Path] = []
    for s in specs:
        d = s.low.parent
        info = _read_entry_info(d)
        if info is None:
            raise DatasetError("generated training entry is incomplete or unreadable", path=d)
        if not (d / target_file).is_file():
            raise DatasetError(
                f"generated training entry has no {target_file} (add it with `python -m "
                "pipeline.simulate.trainset SET --add-expected-full`)",
                path=d,
            )
        infos.append(info)
        paths.append(d)
    if not infos:
        raise DatasetError("no generated training entries")
    return PairStore(infos, None, paths, target_file=target_file)
