"""The durable spool of ``ldct serve``: received instances, queued studies, claims, quarantine.

Layout (everything the service writes lies under the spool folder)::

    SPOOL/tmp/                          temp files of durable writes (same file system)
    SPOOL/incoming/<study>/<sop>.dcm    instances received, each fsync'ed + renamed + dir fsync'ed
                                        before the C-STORE success goes back to the sender
    SPOOL/queue/<ms>-<study>/           a study declared complete (renamed from incoming/ in one
                                        step after ``quiet_s`` seconds without a new instance)
    SPOOL/locks/<job>.lock              flock claim of a job (released by the kernel on kill -9)
    SPOOL/work/<job>/                   the job's denoise output, send manifest and attempts
    SPOOL/failed/<job>/                 jobs given up on, with reason.json
    SPOOL/quarantine/<when>-<id>/       malformed instances (instance.dcm + reason.json)
    SPOOL/log/studies.jsonl             structured per-study log (no PHI unless asked)
    SPOOL/status.json                   heartbeat and counters of the running service

A job is claimed with a non-blocking ``flock`` on its lock file, so any number of worker
processes can drain one spool; a worker killed mid-job drops its lock and the next worker
resumes the job (the denoise output is itself resumable, sends are idempotent).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.pacs.durable import inside, is_uid, rename_durable
from pipeline.utils.files import atomic_write_bytes, fsync_dir, publish_file

DIRS = ("tmp", "incoming", "queue", "locks", "work", "failed", "quarantine", "log", "trash")


@dataclass
class Spool:
    """Paths and operations of one spool folder."""

    root: Path
    log_phi: bool = False

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self._rename_lock = threading.Lock()

    def d(self, name: str) -> Path:
        return self.root / name

    def create(self) -> Spool:
        for name in DIRS:
            self.d(name).mkdir(parents=True, exist_ok=True)
        return self

    # -- receiving --------------------------------------------------------------------------
    def store_instance(self, study_uid: str, sop_uid: str, data: bytes | memoryview) -> Path:
        """Durably store one received instance under incoming/<study>/ (returns its path)."""
        if not (is_uid(study_uid) and is_uid(sop_uid)):
            raise ValueError("StudyInstanceUID/SOPInstanceUID missing or not a valid UID")
        tmp = inside(self.root, self.d("tmp") / f"{sop_uid}.{os.getpid()}.{secrets.token_hex(4)}")
        tmp.write_bytes(data)
        folder = inside(self.root, self.d("incoming") / study_uid)
        target = folder / f"{sop_uid}.dcm"
        with self._rename_lock:  # the collector moves study folders under the same lock
            folder.mkdir(exist_ok=True)
            publish_file(tmp, target, durable=True)
            fsync_dir(self.d("incoming"))
        return target

    def quarantine(self, data: bytes | memoryview | None, reason: str, peer: str) -> Path:
        """Keep a malformed instance with the reason (never inside incoming/)."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        folder = inside(self.root, self.d("quarantine") / f"{stamp}-{secrets.token_hex(6)}")
        folder.mkdir(parents=True)
        if data is not None:
            atomic_write_bytes(folder / "instance.dcm", data, durable=True)
        atomic_write_bytes(
            folder / "reason.json",
            json.dumps({"reason": reason, "peer": peer, "received_at": time.time()}).encode(),
            durable=True,
        )
        return folder

    # -- study completion --------------------------------------------------------------------
    def incoming_studies(self) -> list[Path]:
        return sorted(p for p in self.d("incoming").iterdir() if p.is_dir())

    def queue_quiet(self, quiet_s: float, not_before: float) -> list[Path]:
        """Move every incoming study quiet for ``quiet_s`` seconds to queue/ (one rename each).

        ``not_before`` (the service start) restarts the clock after a restart, so a sender
        that was cut off by a crash has ``quiet_s`` seconds to resume before the study is queued.
        """
        moved: list[Path] = []
        now = time.time()
        for study in self.incoming_studies():
            with self._rename_lock:
                try:
                    last = max(study.stat().st_mtime, not_before)
                except FileNotFoundError:
                    continue
                if now - last < quiet_s or not any(study.iterdir()):
                    continue
                job = self.d("queue") / f"{int(now * 1000):013d}-{study.name}"
                rename_durable(study, job)
            moved.append(job)
        return moved

    # -- jobs --------------------------------------------------------------------------------
    def jobs(self) -> list[Path]:
        return sorted(p for p in self.d("queue").iterdir() if p.is_dir())

    @contextlib.contextmanager
    def claim(self, job: Path) -> Iterator[bool]:
        """Hold an exclusive non-blocking flock on ``job``'s lock file; yields False if taken."""
        lock_path = self.d("locks") / f"{job.name}.lock"
        fh: IO[bytes] = open(lock_path, "ab")  # noqa: SIM115 - held for the block
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    yield False
                    return
                raise
            if not job.is_dir():  # finished by another worker between listing and locking
                yield False
                return
            yield True
        finally:
            fh.close()

    def is_claimed(self, job: Path) -> bool:
        lock_path = self.d("locks") / f"{job.name}.lock"
        if not lock_path.exists():
            return False
        with open(lock_path, "ab") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False

    def work_dir(self, job: Path) -> Path:
        return inside(self.root, self.d("work") / job.name)

    def finish(self, job: Path) -> None:
        """Remove a done job: queue entry first (one rename), then its work folder and lock."""
        trash = self.d("trash") / f"{job.name}.{secrets.token_hex(4)}"
        rename_durable(job, trash)
        work = self.work_dir(job)
        if work.exists():
            os.rename(work, trash.with_name(trash.name + ".work"))
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(trash.with_name(trash.name + ".work"), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.d("locks") / f"{job.name}.lock").unlink()

    def fail(self, job: Path, reason: str) -> Path:
        """Move a job to failed/ with its reason (kept for an operator; not retried)."""
        dest = self.d("failed") / job.name
        rename_durable(job, dest)
        work = self.work_dir(job)
        if work.exists():
            os.rename(work, dest / "_work")
        atomic_write_bytes(
            dest / "reason.json",
            json.dumps({"reason": reason, "at": time.time()}).encode(),
            durable=True,
        )
        with contextlib.suppress(FileNotFoundError):
            (self.d("locks") / f"{job.name}.lock").unlink()
        return dest

    def clean_leftovers(self) -> None:
        """At start: remove temp files and trash, and work folders whose job no longer exists."""
        for name in ("tmp", "trash"):
            for p in self.d(name).iterdir():
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        queued = {p.name for p in self.jobs()}
        for w in self.d("work").iterdir():
            if w.name not in queued:
                shutil.rmtree(w, ignore_errors=True)

    # -- log and status ----------------------------------------------------------------------
    def study_label(self, study_uid: str) -> str:
        """The study as logged: its UID with ``log_phi``, else a short hash of it."""
        if self.log_phi:
            return study_uid
        return "sha256:" + hashlib.sha256(study_uid.encode()).hexdigest()[:16]

    def log_event(self, event: str, study_uid: str, **fields: Any) -> None:
        rec = {
            "time": round(time.time(), 3),
            "event": event,
            "study": self.study_label(study_uid),
            **fields,
        }
        line = json.dumps(rec, sort_keys=True) + "\n"
        with open(self.d("log") / "studies.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def counts(self) -> dict[str, int]:
        inc = self.incoming_studies()
        jobs = self.jobs()
        return {
            "incoming_studies": len(inc),
            "incoming_instances": sum(len(list(s.glob("*.dcm"))) for s in inc),
            "queued_jobs": len(jobs),
            "claimed_jobs": sum(self.is_claimed(j) for j in jobs),
            "failed_jobs": sum(1 for p in self.d("failed").iterdir() if p.is_dir()),
            "quarantined": sum(1 for p in self.d("quarantine").iterdir() if p.is_dir()),
        }

    def is_empty(self) -> bool:
        """No instance, job or work left (logs, status and quarantine do not count)."""
        return not any(any(self.d(n).iterdir()) for n in ("incoming", "queue", "work", "tmp"))


def job_study_uid(job: Path) -> str:
    """The StudyInstanceUID of a queue entry ``<ms>-<study>``."""
    return job.name.split("-", 1)[1] if "-" in job.name else job.name
