"""The training loop: steps, validation, best/last checkpoints, early stop, exact resume.

The loop is independent of where data, model and objective come from (see
:mod:`pipeline.train.run` for the assembly from a :class:`TrainConfig`), so it is tested with
small modules. One step = one global batch: forward (autocast in ``amp_dtype`` when set; the
objective always runs in fp32 on the fp32-cast prediction), NaN/inf check of every loss
component, backward, gradient NaN/inf check, clipping, optimizer, schedule and EMA updates.

Files in ``output_dir`` (rank 0 writes): ``state/last.pt`` (resume state, every
``checkpoint.every_steps`` and at the end), ``best.pt`` and ``final.pt`` (model checkpoints via
``export``), ``metrics.jsonl``/``metrics.csv``/``tensorboard/``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import TrainingError
from pipeline.train import distributed as D
from pipeline.train.ema import EMA
from pipeline.train.guards import clip_, grad_norm, nonfinite_components, nonfinite_grads
from pipeline.train.metrics_log import MetricsLog
from pipeline.train.optim import build_optimizer, build_scheduler
from pipeline.train.settings import LoopConfig, NonFinitePolicy, ValMetric
from pipeline.train.sources import EpochBatches
from pipeline.train.state import (
    Progress,
    capture_rng,
    check_finite_module,
    is_better,
    load_state,
    restore_rng,
    save_state,
)
from pipeline.train.validate import validate
from pipeline.utils.progress import LineProgress, progress_bar

log = logging.getLogger(__name__)

#: ``export(path, model, extra)`` writes a model checkpoint (the models package's format).
ExportFn = Callable[[Path, nn.Module, dict[str, Any]], None]


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.run`."""

    steps: int
    best_value: float | None
    best_step: int | None
    stopped_early: bool
    skipped: int
    final_path: Path | None
    best_path: Path | None
    last_val: dict[str, float] = field(default_factory=dict)


def _baseline(values: dict[str, float]) -> str:
    """`` (input 35.12 dB, gain +2.01 dB)``: the identity baseline beside the model's PSNR."""
    if "psnr" not in values or "input_psnr" not in values:
        return ""
    gain = values["psnr"] - values["input_psnr"]
    return (
        f"; psnr {values['psnr']:.2f} dB vs input {values['input_psnr']:.2f} dB "
        f"(gain {gain:+.2f} dB), ssim {values.get('ssim', float('nan')):.4f} vs input "
        f"{values.get('input_ssim', float('nan')):.4f}"
    )


class Trainer:
    """Runs one training job; rank-aware, resumable."""

    def __init__(
        self,
        cfg: LoopConfig,
        model: nn.Module,
        objective: nn.Module,
        batches: EpochBatches,
        *,
        env: D.DistEnv | None = None,
        val_batches: Callable[[], Iterable[dict[str, Any]]] | None = None,
        amp_dtype: torch.dtype | None = None,
        export: ExportFn | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.env = env or D.DistEnv()
        self.device = self.env.device
        self.amp_dtype = amp_dtype
        self.out_dir = Path(cfg.output_dir)
        self.state_path = self.out_dir / "state" / "last.pt"
        self.export_fn = export
        self.meta = dict(meta or {})
        self.batches = batches
        self.val_batches = val_batches
        model = model.to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.base = model
        self.model = D.wrap_model(model, self.env, cfg.sync_batchnorm)
        self.objective = objective.to(self.device)
        self.params = [p for p in self.base.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.steps)
        self.ema = EMA(self.base, cfg.ema.decay) if cfg.ema.enabled else None
        self.eval_model = copy.deepcopy(self.base) if self.ema is not None else self.base
        self.progress = Progress()
        self.mlog: MetricsLog | None = None

    # ----------------------------------------------------------------- state
    def state_payload(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the run stands now."""
        return {
            "model": self.base.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": capture_rng(),
            "progress": self.progress.to_dict(),
            "world_size": self.env.world_size,
            "meta": self.meta,
        }

    def save(self) -> None:
        """Write the resume state (rank 0; all ranks wait)."""
        if self.env.is_main:
            save_state(self.state_path, self.state_payload())
            log.debug("resume state written at step %d", self.progress.step)
        D.barrier(self.env)

    def resume(self) -> None:
        """Load ``state/last.pt`` and continue from its step."""
        payload = load_state(self.state_path)
        old_meta = payload.get("meta", {})
        for key in ("data_manifest_sha256", "model"):
            if key in self.meta and key in old_meta and old_meta[key] != self.meta[key]:
                raise TrainingError(
                    f"cannot resume: {key} changed since the run was started "
                    f"({old_meta[key]!r} -> {self.meta[key]!r})"
                )
        if payload.get("world_size") != self.env.world_size:
            raise TrainingError(
                f"cannot resume exactly: the run used {payload.get('world_size')} process(es), "
                f"this one has {self.env.world_size}"
            )
        self.base.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.ema is not None:
            if payload.get("ema") is None:
                raise TrainingError("cannot resume: EMA enabled now but not in the saved run")
            self.ema.load_state_dict(payload["ema"])
        self.progress = Progress.from_dict(payload["progress"])
        restore_rng(payload["rng"])
        log.info("resumed at step %d (epoch %d, batch %d)", *self._pos())

    def _pos(self) -> tuple[int, int, int]:
        p = self.progress
        return p.step, p.epoch, p.batch

    # ------------------------------------------------------------------ step
    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _nonfinite(self, step: int, what: str) -> None:
        """Apply the non-finite policy: raise (stop) or count a skip."""
        if self.cfg.nonfinite is NonFinitePolicy.STOP:
            raise TrainingError(
                f"non-finite {what} at step {step}; the run stopped (last good resume state: "
                f"{self.state_path}). Use nonfinite: skip to skip such batches."
            )
        self.progress.skipped += 1
        log.warning("step %d: skipped the batch, non-finite %s", step, what)
        if self.progress.skipped > self.cfg.max_skipped:
            raise TrainingError(
                f"more than max_skipped={self.cfg.max_skipped} batches skipped "
                f"(last at step {step}: non-finite {what})"
            )

    def _advance_schedule_only(self) -> None:
        """A skipped batch still counts as a step: the learning rate follows the step count."""
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
            )
            self.scheduler.step()

    def train_step(self, batch: dict[str, Any]) -> dict[str, float] | None:
        """One optimizer step on ``batch``; returns loss components, None when skipped."""
        step = self.progress.step + 1
        low = batch["low"].to(self.device, torch.float32, non_blocking=True)
        full = batch["full"].to(self.device, torch.float32, non_blocking=True)
        if self.cfg.channels_last:
            low = low.contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            pred = self.model(low)
        total, comps = self.objective(pred.float().contiguous(), full)
        bad = nonfinite_components(total, comps)
        if D.any_flag(bool(bad), self.env):
            self._nonfinite(step, "loss: " + (", ".join(bad) or "on another rank"))
            self.optimizer.zero_grad(set_to_none=True)
            self._advance_schedule_only()
            return None
        total.backward()
        norm = grad_norm(self.params)
        if not math.isfinite(float(norm)):
            names = nonfinite_grads(self.base)
            self._nonfinite(step, "gradients in " + (", ".join(names) or "?"))
            self.optimizer.zero_grad(set_to_none=True)
            self._advance_schedule_only()
            return None
        clip_(self.params, norm, self.cfg.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            if step <= self.cfg.ema.start_step:
                self.ema.reset(self.base)
            else:
                self.ema.update(self.base)
        out = {"loss": float(total.detach()), "grad_norm": float(norm), "lr": float(lr)}
        out.update({f"loss_{k}": float(v.detach().float().mean()) for k, v in comps.items()})
        return out

    # ------------------------------------------------------------ validation
    def run_validation(self) -> dict[str, float]:
        """Validate on rank 0, update best checkpoint and early-stop counter; broadcast stop."""
        vcfg = self.cfg.validation
        stop = False
        values: dict[str, float] = {}
        if self.env.is_main and self.val_batches is not None:
            if self.ema is not None:
                self.ema.copy_to(self.eval_model)
            values = validate(
                self.eval_model,
                self.val_batches(),
                device=self.device,
                window=vcfg.window,
                ssim_kernel=vcfg.ssim_kernel,
                amp_dtype=self.amp_dtype,
                channels_last=self.cfg.channels_last,
                max_slices=vcfg.max_slices,
                objective=self.objective if vcfg.metric is ValMetric.LOSS else None,
            )
            stop = self._update_best(values)
        stop = D.broadcast_flag(stop, self.env)
        self.progress.stopped_early = stop
        return values

    def _update_best(self, values: dict[str, float]) -> bool:
        vcfg, p = self.cfg.validation, self.progress
        metric = vcfg.metric.value
        value = values.get(metric, float("nan"))
        higher = vcfg.metric is not ValMetric.LOSS
        p.history.append({"step": float(p.step), **values})
        if self.mlog is not None:
            self.mlog.write("val", p.step, values)
        if is_better(value, p.best_value, higher, self.cfg.early_stop.min_delta):
            p.best_value, p.best_step, p.bad_validations = value, p.step, 0
            self._export("best.pt", {"best_metric": metric, "validation": values})
            log.info("step %d: %s %.4f (new best)%s", p.step, metric, value, _baseline(values))
        else:
            p.bad_validations += 1
            log.info(
                "step %d: %s %.4f (best %.4f at %s)%s",
                p.step,
                metric,
                value,
                p.best_value or float("nan"),
                p.best_step,
                _baseline(values),
            )
        es = self.cfg.early_stop
        return es.enabled and p.bad_validations >= es.patience

    def _export(self, name: str, extra: dict[str, Any]) -> Path | None:
        if self.export_fn is None or not self.env.is_main:
            return None
        model = self.eval_model if self.ema is not None else self.base
        if self.ema is not None:
            self.ema.copy_to(model)
        check_finite_module(model, name)
        path = self.out_dir / name
        info = {
            **self.meta,
            "step": self.progress.step,
            "wall_s": round(self.progress.wall_s, 1),
            "ema": self.ema is not None,
            **extra,
        }
        self.export_fn(path, model, info)
        return path

    # ------------------------------------------------------------------ run
    def run(self, resume: bool = False) -> TrainResult:
        """Train to ``cfg.steps`` (or early stop); returns where the outputs are."""
        cfg, p = self.cfg, self.progress
        if resume:
            self.resume()
            p = self.progress
        if self.env.is_main:
            self.mlog = MetricsLog(self.out_dir, tensorboard=cfg.log.tensorboard)
            self.mlog.truncate_after(p.step)
        self.model.train()
        bar = progress_bar(desc="train", total=cfg.steps, unit="step") if self.env.is_main else None
        if bar is not None:
            bar.skip_ahead(p.step)  # a resumed run: done before, not in the rate
        sums: dict[str, float] = {}
        n_logged, n_window, t0 = 0, 0, time.perf_counter()
        saved_at = -1
        last_val: dict[str, float] = {}
        try:
            while p.step < cfg.steps and not p.stopped_early:
                t_step = time.perf_counter()
                for batch in self.batches.iterate(p.epoch, p.batch):
                    out = self.train_step(batch)
                    p.step += 1
                    p.batch += 1
                    n_window += 1
                    if out is not None:
                        for k, v in out.items():
                            sums[k] = sums.get(k, 0.0) + v
                        n_logged += 1
                    if bar is not None:
                        bar.update(1)
                    if p.step % cfg.log.every_steps == 0 or p.step == cfg.steps:
                        dt = time.perf_counter() - t0
                        self._log_train(sums, n_logged, n_window, dt, bar)
                        sums, n_logged, n_window, t0 = {}, 0, 0, time.perf_counter()
                    ve = cfg.validation.every_steps
                    if ve and p.step % ve == 0:
                        last_val = self.run_validation()
                    now = time.perf_counter()
                    p.wall_s += now - t_step
                    t_step = now
                    if p.step % cfg.checkpoint.every_steps == 0 or p.step == cfg.steps:
                        self.save()
                        saved_at = p.step
                    if p.step >= cfg.steps or p.stopped_early:
                        break
                if p.batch >= self.batches.batches_per_epoch:
                    p.epoch, p.batch = p.epoch + 1, 0
            if self.val_batches is not None and (
                not cfg.validation.every_steps or p.step % cfg.validation.every_steps
            ):
                last_val = self.run_validation()
                saved_at = -1
            if saved_at != p.step:
                self.save()
            final = self._export("final.pt", {"final": True})
        finally:
            if bar is not None:
                bar.close()
            if self.mlog is not None:
                self.mlog.close()
        return TrainResult(
            steps=p.step,
            best_value=p.best_value,
            best_step=p.best_step,
            stopped_early=p.stopped_early,
            skipped=p.skipped,
            final_path=final,
            best_path=self.out_dir / "best.pt" if final and p.best_step is not None else None,
            last_val=last_val,
        )

    def _log_train(
        self, sums: dict[str, float], n: int, n_steps: int, seconds: float, bar: Any
    ) -> dict[str, float]:
        """Mean loss components over the log window (averaged over ranks), samples/s."""
        keys = sorted(sums)
        values = {k: D.mean_scalar(sums[k] / max(n, 1), self.env) for k in keys}
        global_batch = self.batches.batch_size * self.env.world_size
        values["samples_per_s"] = n_steps * global_batch / max(seconds, 1e-9)
        values["epoch"] = float(self.progress.epoch)
        if self.mlog is not None:
            self.mlog.write("train", self.progress.step, values)
        if bar is not None:
            shown = {k.removeprefix("loss_"): f"{v:.4g}" for k, v in values.items() if "loss" in k}
            shown["samples/s"] = f"{values['samples_per_s']:.1f}"
            bar.set_postfix(shown, refresh=False)
            if isinstance(bar, LineProgress):  # not a terminal: one log line per log window
                bar.note(
                    f"step {self.progress.step}: " + ", ".join(f"{k}={v}" for k, v in shown.items())
                )
        return values
