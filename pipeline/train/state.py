"""Resume state of a training run: RNG states, counters, and atomic save/load.

A resume file holds everything an uninterrupted run would still have in memory: model,
optimizer, scheduler and EMA state dicts, the Python/NumPy/torch RNG states, the step and the
data position (epoch, batch within the epoch), best metric and early-stop counter. It is
written with temp file + fsync + rename, so a ``kill -9`` leaves either the previous file or
the complete new one; it is loaded with ``weights_only=True`` (plain tensors and containers).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import CheckpointError, TrainingError
from pipeline.utils.files import atomic_path

STATE_FORMAT = "ldct-train-state/1"


@dataclass
class Progress:
    """Counters of a run. ``step`` batches are done; the next batch is ``batch`` of ``epoch``."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best_value: float | None = None
    best_step: int | None = None
    bad_validations: int = 0
    skipped: int = 0
    stopped_early: bool = False
    #: wall-clock seconds spent in training steps (and validations) over all sessions
    wall_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(**data)


def capture_rng() -> dict[str, Any]:
    """The Python, NumPy and torch (CPU and CUDA) RNG states as weights_only-safe data."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002
    out: dict[str, Any] = {
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state((npst["name"], keys, npst["pos"], npst["has_gauss"], npst["gauss"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def nonfinite_tensors(state_dict: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors in a (nested) state dict that hold NaN or inf."""
    bad: list[str] = []

    def visit(prefix: str, obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
                bad.append(prefix)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                visit(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                visit(f"{prefix}[{i}]", v)

    visit("", state_dict)
    return bad


def check_finite_module(model: nn.Module, what: str) -> None:
    """Refuse to persist a model whose parameters or buffers are not finite."""
    bad = nonfinite_tensors(model.state_dict())
    if bad:
        raise TrainingError(
            f"refusing to write {what}: non-finite values in {', '.join(bad[:5])}"
            + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        )


def save_state(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a resume file atomically; refuses payloads whose model/EMA weights are not finite."""
    for key in ("model", "ema"):
        if payload.get(key) is not None:
            bad = nonfinite_tensors(payload[key])
            if bad:
                raise TrainingError(
                    f"refusing to write resume state {path}: non-finite {key} tensors "
                    f"{', '.join(bad[:5])}"
                )
    payload = {"format": STATE_FORMAT, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a resume file written by :func:`save_state` (``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(
            "no resume state found (was the run started with this output_dir?)", path=p
        )
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"cannot read resume state ({exc})", path=p) from exc
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"not a training resume file: format {found!r}, expected {STATE_FORMAT!r}", path=p
        )
    return payload


def is_better(value: float, best: float | None, higher_is_better: bool, min_delta: float) -> bool:
    """Whether a validation value improves on the best one by more than ``min_delta``."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if higher_is_better else value < best - min_delta
