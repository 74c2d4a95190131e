"""A real Orthanc PACS for tests: temp config, free 127.0.0.1 ports, stopped by its PID.

Used through the ``orthanc`` fixture (tests/conftest.py)::

    def test_x(orthanc):
        orthanc.add_modality("LDCT", "LDCT", 11112)   # a peer Orthanc may send/move to
        orthanc.upload(path)                         # POST /instances
        orthanc.get("/studies")                      # REST, JSON decoded

Orthanc's HTTP server accepts only local clients (``RemoteAccessAllowed: false``); its DICOM
server listens on every interface (Orthanc 1.10 has no bind-address option) but accepts
C-STORE/C-FIND/C-GET/C-MOVE only from the modalities listed in its config with
``DicomCheckModalityHost`` on, so in tests only 127.0.0.1 peers with a known AE title get in.
The DICOMweb plugin (Debian ``orthanc-dicomweb``) is loaded when installed; ``dicomweb`` says
whether it is.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORTHANC_BINARY = os.environ.get("LDCT_TEST_ORTHANC", "/usr/sbin/Orthanc")
DICOMWEB_PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")
ORTHANC_AET = "ORTHANC"
USER = "ldct"
PASSWORD = "ldct-test"


def find_orthanc() -> str | None:
    """Path of the Orthanc binary, or None when it is not installed."""
    if os.access(ORTHANC_BINARY, os.X_OK):
        return ORTHANC_BINARY
    return shutil.which("Orthanc")


def dicomweb_plugin() -> str | None:
    """Path of the Orthanc DICOMweb plugin (libOrthancDicomWeb.so*), or None."""
    for d in DICOMWEB_PLUGIN_DIRS:
        p = Path(d)
        if p.is_dir():
            for f in sorted(p.glob("libOrthancDicomWeb.so*")):
                return str(f)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OrthancServer:
    """One Orthanc process with its own config, storage and ports under ``root``."""

    root: Path
    modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    aet: str = ORTHANC_AET
    stable_age_s: int = 2
    http_port: int = 0
    dicom_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    dicomweb: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return (USER, PASSWORD)

    @property
    def log_path(self) -> Path:
        return self.root / "orthanc.log"

    def config(self) -> dict[str, Any]:
        """The Orthanc JSON configuration this server runs with (also shown in docs/pacs.md)."""
        storage = self.root / "storage"
        cfg: dict[str, Any] = {
            "Name": "ldct-test-orthanc",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": True,
            "StrictAetComparison": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomModalities": {
                name: {"AET": aet, "Host": host, "Port": port}
                for name, (aet, host, port) in self.modalities.items()
            },
            "DicomScpTimeout": 10,
            "DicomScuTimeout": 10,
            "StableAge": self.stable_age_s,
            "SynchronousCMove": True,
            "OverwriteInstances": False,
            "SaveJobs": False,
            "MetricsEnabled": False,
            "Plugins": [],
        }
        plugin = dicomweb_plugin()
        if plugin:
            cfg["Plugins"] = [plugin]
            cfg["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": True}
        return cfg

    def write_config(self) -> Path:
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
        return path

    def start(self, timeout_s: float = 30.0) -> None:
        binary = find_orthanc()
        if binary is None:
            raise FileNotFoundError("Orthanc binary not found")
        self.root.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing and binding
            self.http_port = free_port()
            self.dicom_port = free_port()
            while self.dicom_port == self.http_port:
                self.dicom_port = free_port()
            cfg = self.write_config()
            self.dicomweb = "DicomWeb" in self.config()
            log = self.log_path.open("ab")
            self.process = subprocess.Popen(
                [binary, "--logfile=" + str(self.log_path), str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
            )
            log.close()
            if self._wait_ready(timeout_s):
                return
            last_error = self.log_tail()
            self.stop()
        raise RuntimeError(f"Orthanc did not become ready; log tail:\n{last_error}")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                self.get("/system")
                return self._dicom_listening()
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        return False

    def _dicom_listening(self) -> bool:
        for _ in range(50):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1),
            ):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Stop the process by its PID: SIGTERM, then SIGKILL after 10 s."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.process = None

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    # -- REST -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        if body is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = resp.read()
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, payload: Any) -> Any:
        return self.request("POST", path, json.dumps(payload).encode())

    def upload(self, path: str | Path) -> dict[str, Any]:
        """Store one DICOM file through REST (``POST /instances``); returns Orthanc's answer."""
        result = self.request("POST", "/instances", Path(path).read_bytes(), "application/dicom")
        assert isinstance(result, dict), result
        return result

    def upload_tree(self, root: str | Path) -> int:
        """Upload every ``*.dcm`` under ``root``; returns how many were stored."""
        n = 0
        for f in sorted(Path(root).rglob("*.dcm")):
            self.upload(f)
            n += 1
        return n

    def add_modality(self, name: str, aet: str, port: int, host: str = "127.0.0.1") -> None:
        """Declare a DICOM peer (allowed to store/find/get/move, and a C-MOVE destination)."""
        body = {"AET": aet, "Host": host, "Port": port}
        self.request("PUT", f"/modalities/{name}", json.dumps(body).encode())
        self.modalities[name] = (aet, host, port)

    def reset(self) -> None:
        """Delete every stored patient and every modality added since start (fast test isolation:
        Orthanc takes ~3 s to stop, so one process serves a whole test session)."""
        for pid in self.get("/patients"):
            self.request("DELETE", f"/patients/{pid}")
        configured = set(self.config()["DicomModalities"])
        for name in self.get("/modalities"):
            if name not in configured:
                self.request("DELETE", f"/modalities/{name}")
        self.modalities = {k: v for k, v in self.modalities.items() if k in configured}

    def instance_count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])

    def series_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        """Orthanc's series records of the study with this StudyInstanceUID (empty if unknown)."""
        found = self.post(
            "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}
        )
        out: list[dict[str, Any]] = []
        for sid in found:
            for series_id in self.get(f"/studies/{sid}")["Series"]:
                out.append(self.get(f"/series/{series_id}"))
        return out
