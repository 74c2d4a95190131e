"""Shared test fixtures. Tests are offline and synthetic; slow ones are marked ``slow``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import torch
from orthanc_server import OrthancServer, find_orthanc

os.environ.setdefault("LDCT_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``ldct ARGS...`` in-process through the real entry point; returns code and output."""
    from pipeline.cli.main import main

    def _run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return _run


@pytest.fixture(scope="session")
def orthanc_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """One Orthanc per test session (it takes ~3 s to stop); stopped by its PID at the end."""
    if find_orthanc() is None:
        pytest.skip("Orthanc is not installed (Debian package `orthanc`; .ci/run installs it)")
    server = OrthancServer(root=tmp_path_factory.mktemp("orthanc"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def orthanc(orthanc_session: OrthancServer) -> OrthancServer:
    """A running Orthanc on free 127.0.0.1 ports with a temp config and storage (see
    tests/orthanc_server.py), empty at the start of each test. Skipped when Orthanc is absent."""
    orthanc_session.reset()
    return orthanc_session


#: words in a skip reason -> the Debian package that provides the missing tool
_SYSTEM_TOOLS = {
    "dciodvfy": "dicom3tools",
    "dcmdump": "dcmtk",
    "dcm2niix": "dcm2niix",
    "chromium": "chromium",
    "orthanc": "orthanc",
}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line at the end when tests were skipped for missing system tools, with the fix."""
    missing: set[str] = set()
    count = 0
    for rep in terminalreporter.stats.get("skipped", []):
        reason = str(rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else rep.longrepr)
        hits = {pkg for word, pkg in _SYSTEM_TOOLS.items() if word in reason.lower()}
        if hits:
            count += 1
            missing |= hits
    if missing:
        pkgs = " ".join(sorted(missing))
        terminalreporter.write_line(
            f"{count} test(s) skipped for missing system tools ({pkgs}); install them with: "
            f"apt-get update && apt-get install -y --no-install-recommends {pkgs}"
        )
