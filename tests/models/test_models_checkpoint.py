"""Checkpoint round trip, weight hash and error cases; registry errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.errors import CheckpointError, ConfigError
from pipeline.models import checkpoint as ckpt_mod
from pipeline.models.checkpoint import load_checkpoint, model_hash, save_checkpoint
from pipeline.models.registry import build_from_config, build_model, resolve_params


def _trained_like(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = build_model("drle", channels=8)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return m


def test_round_trip_restores_outputs_and_metadata(tmp_path: Path) -> None:
    m = _trained_like().eval()
    cfg = {"name": "drle", "params": {"channels": 8}}
    path = save_checkpoint(tmp_path / "a" / "m.pt", m, cfg, {"losses": ["mse"], "epoch": 3})
    loaded = load_checkpoint(path)
    x = torch.rand(1, 1, 20, 17)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), m(x), rtol=0, atol=0)
    assert not loaded.model.training
    assert loaded.model_cfg == cfg
    assert loaded.meta["extra"] == {"losses": ["mse"], "epoch": 3}
    assert loaded.meta["format_version"] == ckpt_mod.CHECKPOINT_VERSION
    assert loaded.model_hash == model_hash(m, "drle")
    assert loaded.model_hash.startswith("drle-") and len(loaded.model_hash) == 5 + 16
    # hash depends on weights only: saving again gives the same hash
    again = load_checkpoint(save_checkpoint(tmp_path / "b.pt", loaded.model, cfg))
    assert again.sha256 == loaded.sha256
    assert load_checkpoint(save_checkpoint(tmp_path / "c.pt", _trained_like(1), cfg)).sha256 != (
        loaded.sha256
    )


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    good = save_checkpoint(
        tmp_path / "g.pt",
        build_model("drle", channels=4),
        {"name": "drle", "params": {"channels": 4}},
    )
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(CheckpointError):
        load_checkpoint(trunc)


def test_foreign_torch_file_and_format_version(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save(build_model("drle", channels=4).state_dict(), plain)
    with pytest.raises(CheckpointError, match="not an ldct-pipeline checkpoint"):
        load_checkpoint(plain)
    p = save_checkpoint(
        tmp_path / "v.pt",
        build_model("drl", channels=4),
        {"name": "drl", "params": {"channels": 4}},
    )
    payload = torch.load(p, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, p)
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        load_checkpoint(p)


def test_other_model_and_tampered_weights(tmp_path: Path) -> None:
    cfg = {"name": "drle", "params": {"channels": 4}}
    p = save_checkpoint(tmp_path / "m.pt", build_model("drle", channels=4), cfg)
    with pytest.raises(CheckpointError, match="holds model 'drle', expected 'drl'"):
        load_checkpoint(p, expected_model="drl")
    payload = torch.load(p, weights_only=True)
    payload["state_dict"]["out.bias"] += 1.0
    torch.save(payload, p)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(p)
    # weights of a different width recorded consistently but not fitting the config
    payload = torch.load(
        save_checkpoint(tmp_path / "w.pt", build_model("drle", channels=4), cfg), weights_only=True
    )
    payload["model_params"] = {"channels": 8}
    torch.save(payload, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="do not fit model 'drle'"):
        load_checkpoint(tmp_path / "w.pt")


def test_extra_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JSON-compatible"):
        save_checkpoint(
            tmp_path / "x.pt",
            build_model("drl", channels=2),
            {"name": "drl", "params": {"channels": 2}},
            {"obj": object()},
        )


def test_registry_errors_and_config_build() -> None:
    with pytest.raises(ConfigError, match="did you mean 'drle'"):
        build_model("drle2")
    with pytest.raises(ConfigError, match="did you mean 'channels'"):
        build_model("drle", chanels=3)
    with pytest.raises(ConfigError, match="no parameter 'edge'"):
        build_model("drl", edge=True)  # preset of the 'drl' entry
    assert resolve_params("drle")["channels"] == 64
    m = build_from_config({"name": "drle", "params": {"channels": 4}})
    assert m.conv1[0].out_channels == 4  # type: ignore[index]
