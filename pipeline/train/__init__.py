"""Training (``ldct train``): config, loop, resume, validation, single process or torchrun.

Module map:

* ``config`` -- :class:`TrainConfig` (``data`` + ``model`` + ``loss`` + loop settings);
  ``settings`` -- the loop's own typed settings.
* ``run`` -- assemble and run a job; ``loop`` -- :class:`Trainer` (steps, validation,
  checkpoints, early stop, exact resume); ``sources`` -- resumable rank-sharded batches.
* ``validate`` -- whole-slice validation with the evaluation metrics; ``guards`` -- NaN/inf
  detection; ``ema``, ``optim`` -- weight averaging, optimizer and schedule.
* ``state``, ``provenance``, ``metrics_log`` -- resume state, what made a checkpoint, logs.
* ``distributed`` -- DDP setup; ``bundled`` -- the bundled demo model's path.

The names below are the stage's public face, imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline._lazy import attach

if TYPE_CHECKING:
    from pipeline.train.config import TrainConfig, load_train_config
    from pipeline.train.distributed import DistEnv
    from pipeline.train.loop import Trainer
    from pipeline.train.metrics_log import MetricsLog, read_jsonl
    from pipeline.train.run import run_training
    from pipeline.train.settings import LoopConfig

_EXPORTS: dict[str, tuple[str, ...]] = {
    "config": ("TrainConfig", "load_train_config"),
    "settings": ("LoopConfig",),
    "run": ("run_training",),
    "loop": ("Trainer",),
    "distributed": ("DistEnv",),
    "metrics_log": ("MetricsLog", "read_jsonl"),
}

__all__ = [
    "DistEnv",
    "LoopConfig",
    "MetricsLog",
    "TrainConfig",
    "Trainer",
    "load_train_config",
    "read_jsonl",
    "run_training",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, globals(), _EXPORTS)
