"""Plan, shards, config, manifest merge and publish verification (no model needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from infer_helpers import write_series

from pipeline.errors import ConfigError
from pipeline.infer.config import DenoiseConfig, parse_shard, resolve_shard
from pipeline.infer.manifest import ManifestRow, merge_parts, write_part
from pipeline.infer.plan import build_plan, check_paths, shard_of
from pipeline.infer.publish import (
    MARKER,
    STAGING_DIR,
    Completion,
    clean_stale_staging,
    new_staging,
    publish,
    staging_parts,
    verify_completed,
)
from pipeline.io.discover import scan


def test_parse_and_resolve_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "a/b", "1"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_shard(None) == (0, 1)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert resolve_shard(None) == (2, 3)  # torchrun
    assert resolve_shard("0/2") == (0, 2)  # the flag wins


def test_config_rejects_typos_and_bad_values() -> None:
    with pytest.raises(ValueError):
        DenoiseConfig.model_validate({"batchsize": 4})
    with pytest.raises(ValueError):
        DenoiseConfig.model_validate({"precision": "fp16"})
    with pytest.raises(ValueError):
        DenoiseConfig.model_validate({"selection": {"exclude_descriptions": ["("]}})


def test_shards_partition_keys() -> None:
    keys = [f"{i:016x}" for i in range(200)]
    for n in (1, 3, 7):
        shares = [{k for k in keys if shard_of(k, n) == i} for i in range(n)]
        assert sum(len(s) for s in shares) == len(keys)
        assert set().union(*shares) == set(keys)
        assert all(len(s) > 0 for s in shares)  # deterministic hash spreads the keys


def test_output_names_are_hashes_inside_out(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_series(root / "a", patient_id="../../etc/passwd", description="../../../x")
    res = scan([root])
    out = tmp_path / "out"
    plan = build_plan(res.series, res.skipped, out, DenoiseConfig(), "ab" * 32)
    (item,) = plan.items
    rel = item.out_dir.relative_to(out.resolve())
    assert len(rel.parts) == 3 and rel.parts[0] == "dicom"
    assert rel.parts[1].startswith("st-") and rel.parts[2].startswith("se-")
    assert all(c.isalnum() or c == "-" for c in "".join(rel.parts))
    assert item.record_dir.relative_to(out.resolve()).parts == ("series", *rel.parts[1:])


def test_check_paths(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    with pytest.raises(ConfigError, match="inside input folder"):
        check_paths([inp], inp / "out")
    with pytest.raises(ConfigError, match="inside the output folder"):
        check_paths([inp], tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        check_paths([tmp_path / "nope"], tmp_path / "out")
    check_paths([inp], tmp_path / "out")


def test_manifest_parts_merge_latest_row_wins(tmp_path: Path) -> None:
    old = ManifestRow("k1", "/a", "failed", reason="read: boom", finished_at=1.0)
    new = ManifestRow("k1", "/a", "ok", finished_at=2.0)
    other = ManifestRow("k2", "/b", "skipped", reason="rule")
    write_part(tmp_path, [old, other], 0, 2, {"shard": "0/2"})
    write_part(tmp_path, [new], 1, 2, {"shard": "1/2"})
    rows = merge_parts(tmp_path)
    assert [(r.series_key, r.status) for r in rows] == [("k1", "ok"), ("k2", "skipped")]
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["summary"] == {"ok": 1, "skipped": 1, "failed": 0}
    assert (tmp_path / "manifest.csv").read_text().splitlines()[0].startswith("series_key,")
    with pytest.raises(ValueError, match="must be ok"):
        ManifestRow("k3", "/c", "maybe")


def test_publish_verify_and_tamper(tmp_path: Path) -> None:
    out = tmp_path / "out"
    staging = new_staging(out, "key1")
    dicom_part, record_part = staging_parts(staging)
    dicom_part.mkdir()
    record_part.mkdir()
    (dicom_part / "IM00001.dcm").write_bytes(b"payload")
    (record_part / "denoised.nii.gz").write_bytes(b"nifti")
    final, record = out / "dicom" / "st-x" / "se-key1", out / "series" / "st-x" / "se-key1"
    publish(staging, final, record, Completion("fp1", "key1", "1.2.3", 1, 0), out)
    assert not staging.exists()
    assert sorted(p.name for p in final.iterdir()) == ["IM00001.dcm"]  # DICOM only
    assert sorted(p.name for p in record.iterdir()) == [MARKER, "denoised.nii.gz"]
    assert verify_completed(record, final, "fp1") is not None
    assert verify_completed(record, final, "other-fingerprint") is None
    (final / "IM00001.dcm").write_bytes(b"changed")
    assert verify_completed(record, final, "fp1") is None
    (final / "IM00001.dcm").write_bytes(b"payload")
    (final / "extra.dcm").write_bytes(b"x")
    assert verify_completed(record, final, "fp1") is None
    (final / "extra.dcm").unlink()
    (record / "denoised.nii.gz").write_bytes(b"changed")
    assert verify_completed(record, final, "fp1") is None


def test_stale_staging_of_dead_process_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    mine = new_staging(out, "live")
    import socket

    host = "".join(c for c in socket.gethostname() if c.isalnum())[:20] or "host"
    dead = out / STAGING_DIR / f"k.{host}.999999999.abcd"
    dead.mkdir(parents=True)
    foreign = out / STAGING_DIR / "k.otherhost.1.abcd"
    foreign.mkdir()
    time.sleep(0.01)
    removed = clean_stale_staging(out)
    assert removed == [dead]
    assert mine.exists() and foreign.exists()
