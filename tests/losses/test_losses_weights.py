"""VGG16 weights: offline loading through the real code, verification and clear errors."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from pipeline.errors import WeightsError
from pipeline.losses import weights as W
from pipeline.utils.files import sha256_file


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random VGG16 state dict in torchvision's key layout (features.N.*)."""
    state = {f"features.{k}": v for k, v in W.random_features_state(seed=11).items()}
    state["classifier.6.bias"] = torch.zeros(1000)  # extra keys are ignored
    path = tmp_path_factory.mktemp("vgg") / "vgg16-random.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_hub_dir_follows_torch_home(hub):
    assert W.imagenet_weights_path() == hub / "vgg16-397923af.pth"


def test_random_state_is_seeded_and_kaiming(state_file):
    a, b = W.random_features_state(1), W.random_features_state(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"], W.random_features_state(2)["0.weight"])
    w = W.random_features_state(0)["28.weight"]  # 512x512x3x3: std = sqrt(2 / (512*9))
    assert abs(w.std().item() / (2 / (512 * 9)) ** 0.5 - 1) < 0.01


def test_load_file_roundtrip(state_file):
    loaded = W.load_features_file(state_file)
    ref = W.random_features_state(seed=11)
    assert set(loaded) == set(ref)
    assert all(torch.equal(loaded[k], ref[k]) for k in ref)


def test_features_only_layout_accepted(tmp_path):
    p = tmp_path / "feats.pth"
    torch.save(W.random_features_state(seed=2), p)
    assert torch.equal(W.load_features_file(p)["0.weight"], W.random_features_state(2)["0.weight"])


def test_missing_file_names_the_commands(tmp_path):
    with pytest.raises(WeightsError, match=r"ldct weights fetch.*ldct weights import FILE"):
        W.load_features_file(tmp_path / "nope.pth")


def test_corrupt_file(tmp_path):
    p = tmp_path / "bad.pth"
    p.write_bytes(b"\x00not a torch file" * 100)
    with pytest.raises(WeightsError, match="cannot read as a torch state dict") as exc:
        W.load_features_file(p)
    assert exc.value.path == p


def test_truncated_file(state_file, tmp_path):
    p = tmp_path / "trunc.pth"
    p.write_bytes(state_file.read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="cannot read"):
        W.load_features_file(p)


def test_wrong_shape_and_missing_key(tmp_path):
    state = W.random_features_state(seed=0)
    state["5.weight"] = torch.zeros(128, 32, 3, 3)
    p = tmp_path / "shape.pth"
    torch.save(state, p)
    with pytest.raises(
        WeightsError, match=r"5.weight has shape \(128, 32, 3, 3\).*\(128, 64, 3, 3\)"
    ):
        W.load_features_file(p)
    del state["5.weight"]
    torch.save(state, p)
    with pytest.raises(WeightsError, match=r"missing '5\.weight'"):
        W.load_features_file(p)
    torch.save([1, 2, 3], p)
    with pytest.raises(WeightsError, match="expected a state dict"):
        W.load_features_file(p)


def test_imagenet_missing_message(hub):
    with pytest.raises(WeightsError) as exc:
        W.load_imagenet_features()
    msg = str(exc.value)
    assert "ldct weights fetch" in msg and "ldct weights import FILE" in msg
    assert "vgg_weights: random" in msg
    st = W.weights_status()
    assert not st.exists and not st.usable


def test_import_refuses_wrong_hash(hub, state_file):
    with pytest.raises(WeightsError, match=r"size .* bytes"):
        W.import_weights(state_file)
    assert not W.imagenet_weights_path().exists()


def _pretend_imagenet(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setattr(W, "IMAGENET_SHA256", sha256_file(path))
    monkeypatch.setattr(W, "IMAGENET_SIZE_BYTES", path.stat().st_size)


def test_import_then_load_through_hub(hub, state_file, monkeypatch):
    _pretend_imagenet(monkeypatch, state_file)
    dest = W.import_weights(state_file)
    assert dest == hub / "vgg16-397923af.pth"
    st = W.weights_status()
    assert st.exists and st.verified and st.usable
    loaded = W.load_imagenet_features()
    assert torch.equal(loaded["28.weight"], W.random_features_state(11)["28.weight"])


def test_installed_file_corrupted_is_detected(hub, state_file, monkeypatch):
    _pretend_imagenet(monkeypatch, state_file)
    dest = W.import_weights(state_file)
    data = bytearray(dest.read_bytes())
    data[-100] ^= 0xFF
    dest.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"SHA-256 .* does not match"):
        W.load_imagenet_features()
    assert W.weights_status().verified is False


def test_fetch_without_network(hub, monkeypatch):
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match=r"download .* failed.*ldct weights import FILE"):
        W.fetch_weights(progress=False)
    assert not W.imagenet_weights_path().exists()  # no partial file left behind


def test_fetch_uses_torch_hub_downloader(hub, state_file, monkeypatch):
    _pretend_imagenet(monkeypatch, state_file)
    calls = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True):
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(state_file.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    dest = W.fetch_weights(progress=False)
    assert dest.is_file() and calls == [(W.IMAGENET_URL, W.IMAGENET_SHA256[:8])]
