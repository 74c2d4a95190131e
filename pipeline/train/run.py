"""Assemble a training job from a :class:`TrainConfig` and run it (``ldct train``).

Data (``pipeline.data``), model (``pipeline.models``), objective (``pipeline.losses``) and the
checkpoint format (``pipeline.models.checkpoint``) come from their packages; this module only
wires them to :class:`~pipeline.train.loop.Trainer` and records provenance: every model
checkpoint's ``extra`` holds the resolved config, the code version and the data-manifest hash.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pipeline.config import config_hash, config_to_dict, save_resolved
from pipeline.errors import ConfigError
from pipeline.train import distributed as D
from pipeline.train.config import TrainConfig
from pipeline.train.loop import Trainer, TrainResult
from pipeline.train.provenance import code_version, hash_records
from pipeline.train.sources import EpochBatches

if TYPE_CHECKING:
    from pipeline.data.config import DataLoaders
    from pipeline.losses.objective import Objective

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation happens after this)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - libraries may use the legacy global RNG
    torch.manual_seed(seed)


def resolve_amp(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for the denoiser (None = fp32), via the models package's CPU detection."""
    from pipeline.models.precision import resolve_precision

    dtype = resolve_precision(precision, device)
    return None if dtype == torch.float32 else dtype


def _rel(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(Path(path).resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def data_manifest_hash(
    pairs: dict[str, list[Any]], splits: dict[str, list[str]], root: Path | None
) -> str:
    """SHA-256 over the pairs of each split (patient, series paths relative to the root, dose)."""
    records = {
        split: [
            {
                "patient": s.patient,
                "tag": s.tag,
                "dose": s.dose,
                "low": _rel(s.low, root),
                "full": _rel(s.full, root),
            }
            for s in specs
        ]
        for split, specs in sorted(pairs.items())
    }
    return hash_records({"pairs": records, "splits": splits})


def init_from_checkpoint(model: nn.Module, cfg: TrainConfig) -> dict[str, Any]:
    """Copy the weights of ``cfg.init_weights`` into ``model``; returns what was loaded.

    The checkpoint must hold the same registered model with weights of the same names and shapes.
    Other parameters may differ when every checkpoint weight still fits (e.g. switching on
    ``lowcut_sigma``, or adding a zero-initialised ``head_features`` head, whose weights then
    start fresh): the changes and the fresh tensors are logged and recorded. ConfigError when a
    weight does not fit or has no place in the new model.
    """
    from pipeline.models.checkpoint import load_checkpoint
    from pipeline.models.registry import resolve_params

    assert cfg.init_weights is not None
    ck = load_checkpoint(cfg.init_weights, expected_model=cfg.model.name)
    want = json.loads(json.dumps(resolve_params(cfg.model.name, **cfg.model.params)))
    have = json.loads(json.dumps(resolve_params(cfg.model.name, **ck.model_cfg["params"])))
    changed = {
        k: [have.get(k), want.get(k)]
        for k in sorted(set(want) | set(have))
        if have.get(k) != want.get(k)
    }
    try:
        res = model.load_state_dict(ck.model.state_dict(), strict=not changed)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ConfigError(
            f"init_weights {cfg.init_weights}: its weights do not fit the config's model "
            f"(parameters changed: {changed}): {first}"
        ) from None
    fresh = list(res.missing_keys)  # empty unless not strict (parameters changed)
    if res.unexpected_keys:
        raise ConfigError(
            f"init_weights {cfg.init_weights}: weights {res.unexpected_keys[:3]} have no place in "
            f"the config's model (parameters changed: {changed})"
        )
    if fresh:
        log.info("init_weights: %d tensors start fresh (%s ...)", len(fresh), fresh[0])
    if changed:
        log.info("init_weights %s: parameters changed %s", cfg.init_weights, changed)
    return {
        "path": str(cfg.init_weights),
        "weights_sha256": ck.sha256,
        "step": (ck.meta.get("extra") or {}).get("step"),
        "params_changed": changed,
        "fresh": fresh,
    }


def simulated_meta(root: Path) -> dict[str, Any]:
    """Checkpoint metadata of a generated training set: its spec, seeds and training envelope."""
    from pipeline.models.envelope import EXTRA_KEY, TrainingEnvelope
    from pipeline.simulate.trainset import envelope, read_trainset

    index = read_trainset(root)
    env = TrainingEnvelope.from_dict(envelope(index))  # validated against the shared schema
    return {
        EXTRA_KEY: env.to_dict(),
        "training_data": {
            "generator": "pipeline.simulate.trainset",
            "spec": index["spec"],
            "entries": {
                split: sum(1 for e in index["entries"] if e["split"] == split)
                for split in ("train", "val")
            },
            "entry_seeds_sha256": hash_records([(e["name"], e["seed"]) for e in index["entries"]]),
            "generation_s": round(float(index.get("generation_s", 0.0)), 1),
            "never_trained_on": "pydicom / pydicom-data CT images; the held-out benchmark's "
            "phantom family and cosine-filter geometry",
        },
    }


def run_training(cfg: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Train as configured (single process, or DDP under torchrun); returns the outcome."""
    from pipeline.data.config import build_loaders
    from pipeline.losses.objective import build_objective
    from pipeline.models.capability import capability, require
    from pipeline.models.checkpoint import save_checkpoint
    from pipeline.models.registry import build_model

    env = D.init_distributed(cfg.device)
    try:
        if cfg.threads is not None and env.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        out = Path(cfg.output_dir)
        resume = _check_resume(out, resume)
        # precision first: a bf16 request this device cannot run is refused before any work
        amp = resolve_amp(cfg.precision.value, env.device)
        if cfg.loss.perceptual.weight > 0 and cfg.loss.perceptual.precision == "bf16":
            require(capability(env.device), torch.bfloat16, "loss.perceptual.precision bf16")
        seed_everything(cfg.seed)
        # model and objective next: a missing VGG weights file fails before data decoding
        model: nn.Module = build_model(cfg.model.name, **cfg.model.params)
        init = init_from_checkpoint(model, cfg) if cfg.init_weights is not None else None
        objective = build_objective(cfg.loss)
        loaders = build_loaders(
            cfg.data, seed=cfg.seed, prior=getattr(model, "training_prior", None)
        )
        per_rank = D.per_rank_batch(cfg.data.batch_size, env)
        batches = EpochBatches(
            loaders.train.dataset,
            batch_size=per_rank,
            env=env,
            seed=cfg.seed,
            num_workers=cfg.data.num_workers,
            epoch_ids=True,
        )
        val_loader = loaders.val
        meta = _run_meta(cfg, loaders, objective, amp, env, init)
        log.info(
            "training %s for %d steps (global batch %d on %d process(es), %s, loss %s)",
            cfg.model.name,
            cfg.steps,
            cfg.data.batch_size,
            env.world_size,
            meta["precision"],
            meta["loss"],
        )

        def export(path: Path, net: nn.Module, extra: dict[str, Any]) -> None:
            save_checkpoint(path, net, cfg.model, extra)

        if env.is_main:
            save_resolved(cfg, out / "config.yaml")
        trainer = Trainer(
            cfg,
            model,
            objective,
            batches,
            env=env,
            val_batches=(lambda: iter(val_loader)) if val_loader is not None else None,
            amp_dtype=amp,
            export=export,
            meta=meta,
        )
        return trainer.run(resume=resume)
    finally:
        D.shutdown(env)


def _check_resume(out: Path, resume: bool) -> bool:
    """Whether to resume: a fresh start when ``--resume`` finds no state; a run already in
    ``out`` without ``--resume`` is refused (:class:`ConfigError`)."""
    state = out / "state" / "last.pt"
    if resume and not state.exists():
        # e.g. killed before its first checkpoint: nothing to continue, nothing to lose
        log.warning(
            "--resume: no resume state at %s (the run stopped before its first checkpoint, "
            "or never started); starting fresh",
            state,
        )
        resume = False
    if not resume and state.exists():
        raise ConfigError(
            f"output_dir {out} already holds a run; pass --resume to continue it or choose "
            "another output_dir"
        )
    return resume


def _run_meta(
    cfg: TrainConfig,
    loaders: DataLoaders,
    objective: Objective,
    amp: torch.dtype | None,
    env: D.DistEnv,
    init: dict[str, Any] | None,
) -> dict[str, Any]:
    """What every checkpoint of this run records: config, code, data hashes, loss, precision."""
    root = cfg.data.root if cfg.data.root is not None else cfg.data.manifest
    root_dir = root if root is None or root.is_dir() else root.parent
    meta: dict[str, Any] = {
        "config": config_to_dict(cfg),
        "config_hash": config_hash(cfg),
        "code": code_version(),
        "data_manifest_sha256": data_manifest_hash(
            loaders.pairs, loaders.splits.as_dict(), root_dir
        ),
        "splits": loaders.splits.as_dict(),
        "loss": objective.describe(),
        "vgg_weights": objective.vgg_weights,
        "precision": "fp32" if amp is None else str(amp).removeprefix("torch."),
        "world_size": env.world_size,
        "model": {"name": cfg.model.name, "params": cfg.model.params},
    }
    if init is not None:
        meta["init_weights"] = init
    if cfg.data.simulated is not None:
        meta.update(simulated_meta(cfg.data.simulated))
    meta = json.loads(json.dumps(meta, default=str))  # plain data: weights_only-loadable
    return meta
