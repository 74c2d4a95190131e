"""Headless Chromium: print report pages to PDF and take screenshots (used by tests too)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.errors import ExitCode, LdctError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Closed networks: no background traffic, no sandbox (root in containers), fresh profile.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class BrowserMissing(LdctError):
    exit_code = ExitCode.RESOURCE


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    exe = find_chromium()
    if exe is None:
        raise BrowserMissing("no chromium found on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="ldct-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise LdctError(f"chromium timed out after {timeout_s:.0f} s") from exc


#: Chromium stderr lines that are noise in a container (no session bus, no GPU), not reasons.
_NOISE = ("dbus", "D-Bus", "bus.cc", "gpu", "GPU", "viz_main", "sandbox", "Fontconfig")


def _reason(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not any(n in ln for n in _NOISE)]
    return "; ".join(lines[-3:])[-500:] or "no error message from chromium"


def print_pdf(html: Path, pdf: Path, timeout_s: float = 120.0) -> Path:
    """Print ``html`` (a file) to ``pdf`` with Chromium's own print engine.

    Page size, margins and the running header (patient, page N of M) come from the page's
    CSS ``@page`` rule; Chromium's own header/footer (file URL, date) is switched off.
    """
    pdf.parent.mkdir(parents=True, exist_ok=True)
    proc = _run(
        ["--no-pdf-header-footer", f"--print-to-pdf={pdf.resolve()}", html.resolve().as_uri()],
        timeout_s,
    )
    if not pdf.is_file() or pdf.stat().st_size == 0:
        raise LdctError(
            f"chromium could not print the page to {pdf}: {_reason(proc.stderr)}", path=html
        )
    return pdf


def screenshot(
    html: Path, png: Path, size: tuple[int, int] = (1280, 2400), timeout_s: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Screenshot of ``html``; returns the process (its stderr holds console errors)."""
    args = [
        f"--screenshot={png}",
        f"--window-size={size[0]},{size[1]}",
        "--enable-logging=stderr",
        "--v=0",
        html.resolve().as_uri(),
    ]
    proc = _run(args, timeout_s)
    if not png.is_file():
        raise LdctError(f"chromium took no screenshot: {proc.stderr[-500:]}", path=html)
    return proc
