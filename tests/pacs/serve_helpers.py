"""Run ``ldct serve`` as a real process (so tests can kill -9 it) and send to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom

ROOT = Path(__file__).resolve().parents[2]


def wait_for(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ServeProcess:
    """``ldct serve ARGS`` in a subprocess; ``kill9()`` / ``terminate()`` by PID."""

    def __init__(self, spool: Path, port: int, args: list[str], log: Path) -> None:
        self.spool, self.port, self.args, self.log = spool, port, args, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: bool = True) -> ServeProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT), LDCT_NO_PROGRESS="1")
        cmd = [
            sys.executable,
            "-m",
            "pipeline.cli.main",
            "serve",
            "--spool",
            str(self.spool),
            "--port",
            str(self.port),
            *self.args,
        ]
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        if ready:
            wait_for(self._listening, 60, f"ldct serve on port {self.port}\n{self.log_text()}")
        return self

    def _listening(self) -> bool:
        import socket

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"ldct serve exited {self.proc.returncode}:\n{self.log_text()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def sender(aet: str = "SENDER") -> Any:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    ae = AE(ae_title=aet)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    return ae


def send(files: list[Path], port: int, aet: str = "SENDER", tls: Any = None) -> list[int]:
    """C-STORE ``files`` in one association; returns the statuses."""
    ae = sender(aet)
    kw = {"tls_args": (tls, None)} if tls is not None else {}
    assoc = ae.associate("127.0.0.1", port, ae_title="LDCT", **kw)
    assert assoc.is_established, "association not established"
    out = []
    for f in files:
        st = assoc.send_c_store(pydicom.dcmread(f))
        out.append(int(st.Status) if st else -1)
    assoc.release()
    return out


def log_events(spool: Path) -> list[dict[str, Any]]:
    p = spool / "log" / "studies.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []
