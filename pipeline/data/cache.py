"""Decode every pair once and keep its HU arrays where loaders can read them cheaply.

Two modes:

* **memory** (no ``cache_dir``): HU arrays (float32) stay in RAM; the total must fit in
  ``budget_bytes`` or a DatasetError says how much is needed and suggests ``cache_dir``. Forked
  DataLoader workers share these pages copy-on-write.
* **disk** (``cache_dir`` set): each pair is written once to ``cache_dir/<key>/{low,full}.npy``
  (key = hash of the series paths, their file sizes and mtimes) and opened as read-only memmaps,
  lazily and per process, so datasets larger than RAM work and later runs skip decoding.

Only slices are ever copied out (``store.slice(i, z)``), so patch sampling touches a few pages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.pairs import Pair, PairSpec, load_pair
from pipeline.errors import DatasetError
from pipeline.utils.files import atomic_path

log = logging.getLogger(__name__)

#: Default in-memory budget for decoded HU arrays.
DEFAULT_BUDGET_BYTES = 4 * 1024**3
_CACHE_VERSION = 2


@dataclass(frozen=True)
class PairInfo:
    """What loaders need to know about a stored pair without touching its voxels."""

    name: str
    patient: str
    shape: tuple[int, int, int]  # (Z, Y, X)
    positions_mm: tuple[float, ...]
    #: SOPInstanceUIDs of both series (empty for in-memory volumes without slice records)
    sop_uids: tuple[str, ...] = ()


def _series_fingerprint(path: Path) -> list[tuple[str, int, int]]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out = []
    for f in files:
        st = f.stat()
        out.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    return out


def cache_key(spec: PairSpec) -> str:
    """Stable key of a pair's on-disk cache entry (changes when any source file changes)."""
    blob = json.dumps(
        [_CACHE_VERSION, spec.name, _series_fingerprint(spec.low), _series_fingerprint(spec.full)]
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class PairStore:
    """Decoded HU arrays of a list of pairs (memory or disk memmap); picklable for workers."""

    def __init__(
        self,
        infos: list[PairInfo],
        arrays: list[tuple[np.ndarray, np.ndarray]] | None,
        paths: list[Path] | None,
        target_file: str = "full.npy",
    ) -> None:
        self.infos = infos
        self.target_file = target_file
        self._arrays = arrays
        self._paths = paths
        self._opened: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.infos)

    @property
    def on_disk(self) -> bool:
        return self._paths is not None

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_opened"] = {}  # memmaps are reopened in the receiving process
        return state

    def volumes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(low, full) HU arrays (Z, Y, X) float32 of pair ``i`` (memmaps in disk mode).

        In disk mode the second array is read from ``target_file`` (``full.npy``, or a generated
        set's ``expected_full.npy``: :mod:`pipeline.simulate.trainset`)."""
        if self._arrays is not None:
            return self._arrays[i]
        if os.getpid() != self._pid:
            self._opened, self._pid = {}, os.getpid()
        if i not in self._opened:
            assert self._paths is not None
            d = self._paths[i]
            self._opened[i] = (
                np.load(d / "low.npy", mmap_mode="r"),
                np.load(d / self.target_file, mmap_mode="r"),
            )
        return self._opened[i]

    def slice(self, i: int, z: int) -> tuple[np.ndarray, np.ndarray]:
        """(low, full) HU of slice ``z`` of pair ``i``, shape (Y, X) each (views, read-only)."""
        low, full = self.volumes(i)
        return low[z], full[z]

    @property
    def n_slices(self) -> int:
        return sum(info.shape[0] for info in self.infos)

    @property
    def nbytes(self) -> int:
        """Bytes of decoded HU (both doses) held by this store."""
        return sum(2 * 4 * z * y * x for z, y, x in (info.shape for info in self.infos))


def _info(pair: Pair) -> PairInfo:
    return PairInfo(
        name=pair.spec.name,
        patient=pair.spec.patient,
        shape=pair.low.shape,
        positions_mm=tuple(float(v) for v in pair.positions_mm),
        sop_uids=tuple(s.sop_instance_uid for s in (*pair.low.slices, *pair.full.slices)),
    )


def _write_entry(d: Path, pair: Pair) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for role, vol in (("low", pair.low), ("full", pair.full)):
        with atomic_path(d / f"{role}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(vol.hu, dtype=np.float32))
    with atomic_path(d / "info.json") as tmp:
        tmp.write_text(json.dumps(_info(pair).__dict__), encoding="utf-8")


def _read_entry_info(d: Path) -> PairInfo | None:
    try:
        data = json.loads((d / "info.json").read_text(encoding="utf-8"))
        if not ((d / "low.npy").is_file() and (d / "full.npy").is_file()):
            return None
        return PairInfo(
            name=data["name"],
            patient=data["patient"],
            shape=(int(data["shape"][0]), int(data["shape"][1]), int(data["shape"][2])),
            positions_mm=tuple(data["positions_mm"]),
            sop_uids=tuple(data.get("sop_uids", ())),
        )
    except (OSError, ValueError, KeyError):
        return None


def build_store(
    pairs: Sequence[PairSpec | Pair],
    *,
    cache_dir: str | Path | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    loader: Callable[[PairSpec], Pair] = load_pair,
) -> PairStore:
    """Decode each pair once into a :class:`PairStore` (memory within budget, or disk memmaps).

    ``pairs`` may mix specs (read with ``loader``, validated) and already-validated
    :class:`Pair` objects (kept as they are, e.g. for tests or in-memory simulation).
    """
    if not pairs:
        raise DatasetError("no pairs to load")
    infos: list[PairInfo] = []
    if cache_dir is not None:
        root = Path(cache_dir)
        paths: list[Path] = []
        for item in pairs:
            if isinstance(item, Pair):
                h = hashlib.sha256(f"{_CACHE_VERSION}:{item.spec.name}:{item.low.shape}".encode())
                h.update(np.ascontiguousarray(item.low.hu).tobytes())
                h.update(np.ascontiguousarray(item.full.hu).tobytes())
                key = h.hexdigest()[:24]
            else:
                key = cache_key(item)
            d = root / key
            info = _read_entry_info(d)
            if info is None:
                pair = item if isinstance(item, Pair) else loader(item)
                _write_entry(d, pair)
                info = _info(pair)
                log.info("cached %s -> %s", info.name, d)
            infos.append(info)
            paths.append(d)
        return PairStore(infos, None, paths)
    arrays: list[tuple[np.ndarray, np.ndarray]] = []
    used = 0
    for item in pairs:
        pair = item if isinstance(item, Pair) else loader(item)
        low = np.ascontiguousarray(pair.low.hu, dtype=np.float32)
        full = np.ascontiguousarray(pair.full.hu, dtype=np.float32)
        used += low.nbytes + full.nbytes
        if used > budget_bytes:
            raise DatasetError(
                "decoded pairs exceed the in-memory cache budget of "
                f"{budget_bytes / 1024**3:.2f} GiB "
                f"after {len(arrays) + 1} of {len(pairs)} pair(s); set data.cache_dir to cache HU "
                "arrays on disk (memory-mapped), or raise data.cache_budget_gb"
            )
        arrays.append((low, full))
        infos.append(_info(pair))
    log.info("decoded %d pair(s) into memory (%.1f MiB)", len(arrays), used / 1024**2)
    return PairStore(infos, arrays, None)
