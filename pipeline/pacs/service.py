"""``ldct serve``: a C-STORE SCP that denoises each received study and sends the result on.

Flow: C-STORE -> durable write into the spool (success is answered only after fsync + rename
+ directory fsync) -> a study quiet for ``quiet_s`` seconds is queued (one rename) -> a worker
claims it (flock), denoises it with the same functions ``ldct denoise`` runs (scan, build_plan,
run_session: same selection rules, same derived series, same manifest), sends the derived
series to the destination (idempotent C-STORE with a send manifest) and removes the job.

Access: binds 127.0.0.1 unless ``host`` says otherwise; only the configured calling AE titles
(and, if given, peer addresses) may associate; others are rejected (A-ASSOCIATE-RJ: calling AE
not recognised / no reason given). Backpressure: while ``max_queue`` studies are waiting, new
associations are rejected as transient "local limit exceeded", so senders retry later.
Memory: one instance per association is held while it arrives (``max_associations`` bounds
them); a worker holds one series at a time (the denoise streaming bounds).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.pacs.durable import is_uid
from pipeline.pacs.node import (
    DEFAULT_AET,
    NetOptions,
    Node,
    TlsConfig,
    check_aet,
    quiet_pynetdicom,
)
from pipeline.pacs.scu import CT_STORAGE
from pipeline.pacs.spool import Spool, job_study_uid
from pipeline.pacs.web import WebNode
from pipeline.utils.files import atomic_write_bytes, pid_alive

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
#: SOP classes of images whose pixel data are checked on receipt.
_IMAGE_CLASSES = set(CT_STORAGE[:4])


@dataclass
class ServeConfig:
    """Everything ``ldct serve`` needs (the CLI fills it)."""

    spool: Path
    destination: Node | None
    allowed_aets: list[str]
    aet: str = DEFAULT_AET
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_hosts: list[str] = field(default_factory=list)
    quiet_s: float = 10.0
    max_queue: int = 20
    max_associations: int = 4
    workers: int = 1
    scp: bool = True
    tls: TlsConfig | None = None
    dest_tls: TlsConfig | None = None
    net: NetOptions = field(default_factory=NetOptions)
    send_attempts: int = 5
    log_phi: bool = False
    denoise_config: Path | None = None
    denoise_overrides: list[str] = field(default_factory=list)
    model: str | None = None
    #: STOW-RS destination instead of ``destination`` (C-STORE)
    destination_web: WebNode | None = None

    def check(self) -> ServeConfig:
        check_aet(self.aet, "--aet")
        if self.scp and not self.allowed_aets:
            raise ConfigError("give at least one --allow-aet (calling AE titles that may send)")
        for a in self.allowed_aets:
            check_aet(a, "--allow-aet")
        if self.quiet_s <= 0 or self.max_queue < 1 or self.workers < 0 or self.send_attempts < 1:
            raise ConfigError(
                "--quiet must be > 0, --max-queue >= 1, --workers >= 0, --send-attempts >= 1"
            )
        if self.workers and (self.destination is None) == (self.destination_web is None):
            raise ConfigError(
                "workers need one destination: --dest AET@host:port (C-STORE) or "
                "--dest-dicomweb URL (STOW-RS)"
            )
        return self


def _pixel_problem(ds: Any) -> str:
    """Why an image instance cannot be used (empty when it can)."""
    for kw in ("Rows", "Columns", "BitsAllocated", "PixelData"):
        if kw not in ds:
            return f"{kw} missing"
    ts = ds.file_meta.get("TransferSyntaxUID")
    if not bool(getattr(ts, "is_compressed", False)):
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        want = int(ds.Rows) * int(ds.Columns) * (int(ds.BitsAllocated) // 8) * frames * spp
        have = len(ds.PixelData)
        if have < want:
            return f"PixelData holds {have} bytes, Rows x Columns x BitsAllocated need {want}"
    return ""


class Service:
    """The SCP, the collector that queues quiet studies, and the worker threads."""

    def __init__(self, cfg: ServeConfig, echo: Callable[[str], None] = print) -> None:
        self.cfg = cfg.check()
        self.spool = Spool(cfg.spool, log_phi=cfg.log_phi).create()
        self.echo = echo
        self.stop = threading.Event()
        self.started = time.time()
        self.server: Any = None
        self.stats = {
            "received": 0,
            "quarantined": 0,
            "rejected_assoc": 0,
            "studies_done": 0,
            "studies_failed": 0,
        }
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.worker_state: dict[str, str] = {}

    # -- SCP ---------------------------------------------------------------------------------
    def _on_requested(self, event: Any) -> None:
        assoc = event.assoc
        host = str(assoc.requestor.address)
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        reason = ""
        rsd: tuple[int, int, int] | None = None
        if self.cfg.allowed_hosts and host not in self.cfg.allowed_hosts:
            reason, rsd = f"host {host} not allowed", (0x01, 0x01, 0x01)
        elif calling not in self.cfg.allowed_aets:
            reason, rsd = f"calling AE {calling!r} not allowed", (0x01, 0x01, 0x03)
        elif len(self.spool.jobs()) >= self.cfg.max_queue:
            reason, rsd = f"queue full ({self.cfg.max_queue} studies)", (0x02, 0x03, 0x02)
        if rsd is None:
            return
        with self._lock:
            self.stats["rejected_assoc"] += 1
        log.warning("rejected association from %s (%s): %s", host, calling, reason)
        assoc.acse.send_reject(*rsd)
        assoc.is_rejected = True
        assoc.kill()

    def _on_store(self, event: Any) -> int:
        peer = f"{event.assoc.requestor.ae_title}@{event.assoc.requestor.address}"
        raw: bytes | None = None
        try:
            raw = bytes(event.encoded_dataset())
            ds = event.dataset
            ds.file_meta = event.file_meta
            study, sop = ds.get("StudyInstanceUID"), ds.get("SOPInstanceUID")
            problem = ""
            for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                v = ds.get(kw)
                if not is_uid(str(v) if v is not None else None):
                    problem = f"{kw} missing or not a valid UID"
                    break
            if not problem and str(ds.get("SOPClassUID", "")) in _IMAGE_CLASSES:
                problem = _pixel_problem(ds)
            if not problem and str(sop) != str(event.request.AffectedSOPInstanceUID):
                problem = "SOPInstanceUID differs from the C-STORE request's Affected SOP Instance"
        except Exception as exc:  # undecodable dataset: quarantine whatever bytes we have
            problem = f"cannot decode the dataset ({type(exc).__name__}: {exc})"[:500]
        if problem:
            self.spool.quarantine(raw, problem, peer)
            with self._lock:
                self.stats["quarantined"] += 1
            log.warning("quarantined an instance from %s: %s", peer, problem)
            return 0xC000  # Error: cannot understand
        assert raw is not None
        self.spool.store_instance(str(study), str(sop), raw)
        with self._lock:
            self.stats["received"] += 1
        return 0x0000

    def start_scp(self) -> None:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

        ae = AE(ae_title=self.cfg.aet)
        for sop in CT_STORAGE:
            ae.add_supported_context(sop, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context("1.2.840.10008.1.1")  # Verification
        ae.require_calling_aet = list(self.cfg.allowed_aets)
        ae.maximum_associations = self.cfg.max_associations
        ae.network_timeout = self.cfg.net.timeout_s
        ae.dimse_timeout = self.cfg.net.timeout_s
        ae.acse_timeout = self.cfg.net.timeout_s
        ctx = self.cfg.tls.server_context() if self.cfg.tls and self.cfg.tls.enabled else None
        try:
            self.server = ae.start_server(
                (self.cfg.host, self.cfg.port),
                block=False,
                evt_handlers=[
                    (evt.EVT_REQUESTED, self._on_requested),
                    (evt.EVT_C_STORE, self._on_store),
                ],
                ssl_context=ctx,
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.cfg.host}:{self.cfg.port} ({exc})") from exc

    # -- collector and status ----------------------------------------------------------------
    def _collector(self) -> None:
        last_status = 0.0
        while not self.stop.is_set():
            for job in self.spool.queue_quiet(self.cfg.quiet_s, self.started):
                n = len(list(job.glob("*.dcm")))
                self.spool.log_event("queued", job_study_uid(job), instances=n)
            if time.monotonic() - last_status >= HEARTBEAT_S:
                self._write_status()
                last_status = time.monotonic()
            self.stop.wait(min(0.5, self.cfg.quiet_s / 4))
        self._write_status()

    def _write_status(self) -> None:
        with self._lock:
            stats = dict(self.stats)
            workers = dict(self.worker_state)
        status = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "aet": self.cfg.aet,
            "listen": f"{self.cfg.host}:{self.cfg.port}" if self.cfg.scp else "",
            "tls": bool(self.cfg.tls and self.cfg.tls.enabled),
            "destination": str(self.cfg.destination or self.cfg.destination_web or ""),
            "started_at": self.started,
            "heartbeat_at": time.time(),
            "stopping": self.stop.is_set(),
            "stats": stats,
            "workers": workers,
            "counts": self.spool.counts(),
        }
        name = f"status.{os.getpid()}.json" if not self.cfg.scp else "status.json"
        atomic_write_bytes(
            self.spool.root / name, json.dumps(status, indent=1).encode(), durable=True
        )

    # -- workers -----------------------------------------------------------------------------
    def _worker(self, worker: Any) -> None:
        name = worker.name
        while not self.stop.is_set():
            did = worker.run_once()
            if not did:
                self.stop.wait(0.3)
        with self._lock:
            self.worker_state[name] = "stopped"

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self, install_signals: bool = True) -> int:
        quiet_pynetdicom()
        if install_signals:  # before the model loads: a SIGTERM then still stops cleanly
            signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
            signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        self.spool.clean_leftovers()
        from pipeline.pacs.worker import Worker

        workers = [
            Worker(self, f"{socket.gethostname()}:{os.getpid()}:{i}")
            for i in range(self.cfg.workers)
        ]
        for w in workers:  # a missing or corrupt model fails here, before anything is accepted
            w.load()
        if self.stop.is_set():
            self.echo("ldct serve: stopped before it started")
            return 0
        if self.cfg.scp:
            self.start_scp()
            self.started = time.time()  # quiet clocks of studies left by a crash restart now
            tls = " (TLS)" if self.cfg.tls and self.cfg.tls.enabled else ""
            self.echo(
                f"ldct serve: {self.cfg.aet} listening on {self.cfg.host}:{self.cfg.port}"
                f"{tls}; spool {self.spool.root}; destination "
                f"{self.cfg.destination or self.cfg.destination_web}; "
                f"{self.cfg.workers} worker(s)"
            )
            self._threads.append(
                threading.Thread(target=self._collector, name="collector", daemon=True)
            )
        else:
            self.echo(f"ldct serve: {self.cfg.workers} worker(s) on spool {self.spool.root}")
            self._threads.append(
                threading.Thread(target=self._status_loop, name="status", daemon=True)
            )
        for i, w in enumerate(workers):
            self._threads.append(
                threading.Thread(target=self._worker, args=(w,), name=f"worker-{i}", daemon=True)
            )
        for t in self._threads:
            t.start()
        try:
            while not self.stop.is_set():
                self.stop.wait(0.5)
        finally:
            self.echo("ldct serve: stopping (no new associations; finishing the current jobs)")
            if self.server is not None:
                self.server.shutdown()
            for t in self._threads:
                t.join()
            if not self.cfg.scp:
                (self.spool.root / f"status.{os.getpid()}.json").unlink(missing_ok=True)
        self.echo("ldct serve: stopped")
        return 0

    def _status_loop(self) -> None:
        while not self.stop.is_set():
            self._write_status()
            self.stop.wait(HEARTBEAT_S)


def read_status(spool: Path) -> dict[str, Any]:
    """Counts and the service heartbeat of a spool (for ``ldct pacs status``)."""
    sp = Spool(spool)
    if not (sp.root / "queue").is_dir():
        raise ConfigError(f"{spool} is not an ldct serve spool (no queue/ folder)")
    out: dict[str, Any] = {"spool": str(sp.root), "counts": sp.counts(), "service": None}
    status_file = sp.root / "status.json"
    if status_file.is_file():
        try:
            st = json.loads(status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            st = None
        if st is not None:
            age = time.time() - float(st.get("heartbeat_at", 0))
            alive = pid_alive(int(st.get("pid", 0))) and st.get("host") == socket.gethostname()
            st["heartbeat_age_s"] = round(age, 1)
            st["running"] = bool(alive and age < 10 * HEARTBEAT_S and not st.get("stopping"))
            out["service"] = st
    return out
