"""One worker of ``ldct serve``: claim a queued study, denoise it as ``ldct denoise`` does,
send the derived series, log, clean up. Every step is restartable after ``kill -9``."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import LdctError, PacsError
from pipeline.pacs.spool import job_study_uid
from pipeline.utils.files import atomic_write_bytes

if TYPE_CHECKING:
    from pipeline.infer.engine import Denoiser
    from pipeline.infer.session import SessionSummary
    from pipeline.pacs.service import Service

log = logging.getLogger(__name__)

ATTEMPTS = "send-attempts.json"


class Worker:
    """Drains the spool's queue; several (threads or processes) may share one spool."""

    def __init__(self, service: Service, name: str) -> None:
        self.svc = service
        self.name = name
        self._denoiser: Denoiser | None = None
        self._cfg: Any = None
        self._not_before: dict[str, float] = {}

    def _state(self, text: str) -> None:
        with self.svc._lock:
            self.svc.worker_state[self.name] = text

    def run_once(self) -> bool:
        """Process one claimable job; False when there was none."""
        spool = self.svc.spool
        self._state("idle")
        for job in spool.jobs():
            if self._not_before.get(job.name, 0.0) > time.time():
                continue
            with spool.claim(job) as got:
                if not got:
                    continue
                self._process(job)
                return True
        return False

    # -- denoise -----------------------------------------------------------------------------
    def load(self) -> tuple[Any, Denoiser]:
        if self._denoiser is None:
            from pipeline.config import load_config
            from pipeline.infer.config import DenoiseConfig
            from pipeline.infer.loader import load_denoiser, resolve_model_path

            c = self.svc.cfg
            cfg = load_config(DenoiseConfig, c.denoise_config, c.denoise_overrides)
            if c.model is not None:
                cfg = load_config(
                    DenoiseConfig, base={**cfg.model_dump(mode="json"), "model": c.model}
                )
            self._cfg = cfg
            self._denoiser = load_denoiser(cfg, resolve_model_path(cfg))
        return self._cfg, self._denoiser

    def denoise(self, job: Path, out_root: Path) -> SessionSummary | None:
        """The ``ldct denoise JOB --out OUT`` code path (scan, plan, run_session); None when
        the study holds no CT series."""
        from pipeline.infer.session import denoise_planned, plan_inputs

        cfg, denoiser = self.load()
        plan, result = plan_inputs([job], out_root, cfg, denoiser)
        if not result.series and not result.lost_series:
            return None
        return denoise_planned(plan, cfg, denoiser)

    # -- one job -----------------------------------------------------------------------------
    def _done_without_output(
        self, job: Path, study: str, n_in: int, note: str, seconds: float
    ) -> None:
        """A study that needs no derived series (nothing to denoise): logged done, cleaned up."""
        self.svc.spool.log_event(
            "done",
            study,
            worker=self.name,
            instances=n_in,
            derived_series=0,
            note=note,
            seconds=round(seconds, 3),
        )
        self.svc.spool.finish(job)
        self._count("studies_done")

    def _process(self, job: Path) -> None:
        from pipeline.pacs.send import send_outputs
        from pipeline.records import Status

        svc, spool = self.svc, self.svc.spool
        study = job_study_uid(job)
        label = spool.study_label(study)
        work = spool.work_dir(job)
        work.mkdir(parents=True, exist_ok=True)
        n_in = len(list(job.glob("*.dcm")))
        t0 = time.perf_counter()
        self._state(f"denoising {label}")
        spool.log_event("claimed", study, worker=self.name, instances=n_in)
        try:
            summary = self.denoise(job, work / "out")
        except LdctError as exc:
            self._give_up(job, study, f"denoise: {exc}")
            return
        except Exception as exc:  # a bug must not kill the service; the job keeps its data
            log.exception("denoise of %s crashed", label)
            self._give_up(job, study, f"denoise crashed: {type(exc).__name__}: {exc}")
            return
        t_den = time.perf_counter() - t0
        if summary is None:
            self._done_without_output(job, study, n_in, "no CT series in the study", t_den)
            return
        failed = [r for r in summary.rows if r.status == Status.FAILED.value]
        ok = [r for r in summary.rows if r.status == Status.OK.value]
        if failed:
            self._give_up(job, study, "denoise: " + "; ".join(r.reason for r in failed)[:500])
            return
        if not ok:
            self._done_without_output(job, study, n_in, "no series selected for denoising", t_den)
            return
        self._state(f"sending {label}")
        dest = svc.cfg.destination or svc.cfg.destination_web
        t1 = time.perf_counter()
        try:
            sent = send_outputs(
                work / "out",
                calling_aet=svc.cfg.aet,
                node=svc.cfg.destination,
                web=svc.cfg.destination_web,
                tls=svc.cfg.dest_tls,
                opts=svc.cfg.net,
                echo=log.info,
            )
            problem = "" if sent.exit_code == 0 else sent.text.splitlines()[-1]
        except PacsError as exc:
            problem = str(exc)
            sent = None
        if problem:
            self._send_retry(job, study, work, problem)
            return
        assert sent is not None
        spool.log_event(
            "done",
            study,
            worker=self.name,
            instances=n_in,
            derived_series=len(ok),
            derived_instances=len(sent.rows),
            destination=str(dest),
            denoise_s=round(t_den, 3),
            send_s=round(time.perf_counter() - t1, 3),
            seconds=round(time.perf_counter() - t0, 3),
        )
        spool.finish(job)
        self._count("studies_done")

    def _count(self, key: str) -> None:
        with self.svc._lock:
            self.svc.stats[key] += 1

    def _give_up(self, job: Path, study: str, reason: str) -> None:
        log.error("study %s failed: %s", self.svc.spool.study_label(study), reason)
        self.svc.spool.log_event("failed", study, worker=self.name, reason=reason)
        self.svc.spool.fail(job, reason)
        self._count("studies_failed")

    def _send_retry(self, job: Path, study: str, work: Path, problem: str) -> None:
        path = work / ATTEMPTS
        try:
            n = int(json.loads(path.read_text(encoding="utf-8"))["attempts"])
        except (OSError, ValueError, KeyError, TypeError):
            n = 0
        n += 1
        atomic_write_bytes(
            path, json.dumps({"attempts": n, "last_error": problem}).encode(), durable=True
        )
        if n >= self.svc.cfg.send_attempts:
            self._give_up(job, study, f"send failed {n} times: {problem}")
            return
        delay = min(300.0, self.svc.cfg.net.backoff_s * 5 * (2 ** (n - 1)))
        self._not_before[job.name] = time.time() + delay
        self.svc.spool.log_event(
            "send_retry", study, worker=self.name, attempt=n, retry_in_s=delay, reason=problem[:300]
        )
