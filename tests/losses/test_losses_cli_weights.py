"""``ldct weights status|import|fetch`` through the real entry point (offline)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from pipeline.errors import ExitCode
from pipeline.losses import weights as W
from pipeline.utils.files import sha256_file


def flat(text: str) -> str:
    """Output without whitespace (the CLI's log handler wraps long lines)."""
    return "".join(text.split())


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    return tmp_path / "th" / "hub" / "checkpoints"


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    p = tmp_path / "vgg16-copy.pth"
    torch.save({f"features.{k}": v for k, v in W.random_features_state(4).items()}, p)
    return p


def test_status_missing(run_cli, hub):
    r = run_cli("weights", "status")
    assert r.exit_code == ExitCode.RESOURCE
    assert "missing" in r.stdout and "ldctweightsimportFILE" in flat(r.stdout)
    assert flat(str(hub)) in flat(r.stdout)


def test_import_wrong_file_refused(run_cli, hub, state_file):
    r = run_cli("weights", "import", str(state_file))
    assert r.exit_code == ExitCode.RESOURCE
    assert "vgg16-397923af.pth" in flat(r.stderr) and flat(str(state_file)) in flat(r.stderr)
    assert not (hub / W.IMAGENET_FILENAME).exists()


def test_import_missing_file(run_cli, hub, tmp_path):
    r = run_cli("weights", "import", str(tmp_path / "absent.pth"))
    assert r.exit_code == ExitCode.RESOURCE and "nosuchfile" in flat(r.stderr)


def test_import_then_status_ok_then_corrupt(run_cli, hub, state_file, monkeypatch):
    monkeypatch.setattr(W, "IMAGENET_SHA256", sha256_file(state_file))
    monkeypatch.setattr(W, "IMAGENET_SIZE_BYTES", state_file.stat().st_size)
    r = run_cli("weights", "import", str(state_file))
    assert r.exit_code == 0, r.stderr
    dest = hub / W.IMAGENET_FILENAME
    assert dest.is_file() and sha256_file(dest) == sha256_file(state_file)
    r = run_cli("weights", "status")
    assert r.exit_code == 0 and "ok (imagenet, verified)" in r.stdout
    data = bytearray(dest.read_bytes())
    data[1000] ^= 0x01
    dest.write_bytes(bytes(data))
    r = run_cli("weights", "status")
    assert r.exit_code == ExitCode.RESOURCE and "CORRUPT" in r.stdout
    assert run_cli("weights", "status", "--no-verify").exit_code == 0


def test_fetch_offline_names_import(run_cli, hub, monkeypatch):
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    r = run_cli("weights", "fetch")
    assert r.exit_code == ExitCode.RESOURCE
    assert "ldctweightsimportFILE" in flat(r.stderr)
