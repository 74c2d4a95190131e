"""DataConfig validation and build_loaders end to end on a tiny DICOM cohort."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import load_config
from pipeline.data.config import DataConfig, build_loaders
from pipeline.data.splits import explicit_splits, save_splits
from pipeline.errors import ConfigError


def test_config_rejects_typos_and_two_sources(tmp_path):
    with pytest.raises(ConfigError, match="patchsize"):
        load_config(DataConfig, overrides=["patchsize=32"])
    with pytest.raises(ConfigError, match="one of root, manifest or simulated"):
        load_config(DataConfig, overrides=[f"root={tmp_path}", f"manifest={tmp_path}/m.csv"])
    with pytest.raises(ConfigError, match=r"data\.root, data\.manifest or data\.simulated must"):
        _ = DataConfig().source


def test_build_loaders_from_root_with_splits_file(tmp_path, write_dicom_pair):
    root = tmp_path / "ds"
    for i in range(3):
        write_dicom_pair(
            root / f"P{i}" / "quarter_dose",
            root / f"P{i}" / "full_dose",
            patient=f"P{i}",
            seed=i,
            n_slices=2,
            size=32,
        )
    splits = tmp_path / "splits.yaml"
    save_splits(explicit_splits(["P0", "P1"], ["P2"]), splits)
    cfg = load_config(
        DataConfig,
        overrides=[
            f"root={root}",
            f"splits_file={splits}",
            "patch_size=16",
            "batch_size=4",
            "num_workers=0",
            f"cache_dir={tmp_path / 'cache'}",
        ],
    )
    loaders = build_loaders(cfg, seed=0)
    assert [p.patient for p in loaders.pairs["train"]] == ["P0", "P1"]
    batch = next(iter(loaders.train))
    assert batch["low"].shape == (4, 1, 16, 16) and batch["low"].dtype == torch.float32
    assert set(batch["patient"]) <= {"P0", "P1"}  # no val/test patient in training batches
    assert loaders.val is not None
    val = list(loaders.val)
    assert [b["patient"][0] for b in val] == ["P2", "P2"] and val[0]["full"].shape == (1, 1, 32, 32)
    assert len(list((tmp_path / "cache").iterdir())) == 3  # decoded once, cached on disk


def test_copied_series_under_another_patient_is_a_slice_leak(tmp_path, write_dicom_pair):
    import shutil

    root = tmp_path / "ds"
    for i in range(2):
        write_dicom_pair(
            root / f"P{i}" / "quarter_dose",
            root / f"P{i}" / "full_dose",
            patient=f"P{i}",
            seed=i,
            n_slices=2,
            size=32,
        )
    shutil.copytree(root / "P0", root / "P9")  # same files (same SOP UIDs), another folder name
    splits = tmp_path / "splits.yaml"
    save_splits(explicit_splits(["P0", "P1"], ["P9"]), splits)
    cfg = load_config(
        DataConfig,
        overrides=[
            f"root={root}",
            f"splits_file={splits}",
            "patch_size=16",
            "batch_size=4",
            "num_workers=0",
        ],
    )
    from pipeline.errors import DatasetError

    with pytest.raises(DatasetError, match=r"4 slice\(s\) of 'P9' \(val\) are also in 'P0'"):
        build_loaders(cfg, seed=0)
