"""``ldct train`` end to end on a tiny simulated cohort: outputs, provenance, resume, errors."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from skimage.metrics import peak_signal_noise_ratio

from pipeline.intensity import model_to_window
from pipeline.models.checkpoint import load_checkpoint
from pipeline.train.metrics_log import read_jsonl
from pipeline.train.state import load_state


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.simulate.cohort import make_demo_cohort

    root = tmp_path_factory.mktemp("cohort")
    make_demo_cohort(root, n_patients=3, n_slices=3, size=48, seed=1)
    return root


def _config(tmp: Path, cohort: Path, **over: Any) -> Path:
    cfg: dict[str, Any] = {
        "output_dir": str(tmp / "run"),
        "steps": 4,
        "seed": 0,
        "precision": "fp32",
        "data": {
            "root": str(cohort),
            "patch_size": 16,
            "batch_size": 4,
            "patches_per_slice": 2,
            "num_workers": 0,
            "val_fraction": 0.34,
            "test_fraction": 0.0,
            "require_same_frame_of_reference": False,
        },
        "model": {"name": "drle", "params": {"channels": 4}},
        "loss": {"mse_weight": 1.0, "perceptual": {"weight": 0.0}},
        "validation": {"every_steps": 2},
        "checkpoint": {"every_steps": 2},
        "log": {"every_steps": 1, "tensorboard": True},
    }
    cfg.update(over)
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cohort: Path) -> Path:
    """One 4-step CLI run (validation at steps 2 and 4), shared by the tests below."""
    from pipeline.cli.main import main

    tmp = tmp_path_factory.mktemp("trained")
    assert main(["train", "--config", str(_config(tmp, cohort))]) == 0
    return tmp


def test_train_writes_checkpoints_with_provenance(trained: Path) -> None:
    run = trained / "run"
    for name in ("best.pt", "final.pt", "config.yaml", "metrics.csv", "metrics.jsonl"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    ck = load_checkpoint(run / "final.pt")  # the denoise command's loader accepts it
    meta = ck.meta.get("extra", ck.meta)
    assert meta["config"]["model"] == {"name": "drle", "params": {"channels": 4}}
    assert meta["code"]["version"] and "git_commit" in meta["code"]
    assert len(meta["data_manifest_sha256"]) == 64
    assert meta["vgg_weights"] == "none" and meta["precision"] == "fp32"
    assert meta["step"] == 4
    state = load_state(run / "state" / "last.pt")
    assert state["meta"]["data_manifest_sha256"] == meta["data_manifest_sha256"]
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]


def test_validation_psnr_matches_skimage_on_the_val_slices(trained: Path) -> None:
    from pipeline.data.config import build_loaders
    from pipeline.train.config import load_train_config

    run = trained / "run"
    best = load_checkpoint(run / "best.pt")
    extra = best.meta.get("extra", best.meta)
    logged = extra["validation"]["psnr"]
    cfg = load_train_config(trained / "train.yaml")
    val = build_loaders(cfg.data, seed=cfg.seed).val
    assert val is not None
    per_patient: dict[str, list[float]] = defaultdict(list)
    model = best.model.eval()
    with torch.no_grad():
        for batch in val:
            pred = model_to_window(model(batch["low"]).float(), "soft_tissue").numpy()
            full = model_to_window(batch["full"], "soft_tissue").numpy()
            for i, pat in enumerate(batch["patient"]):
                per_patient[pat].append(
                    peak_signal_noise_ratio(full[i, 0], pred[i, 0], data_range=1.0)
                )
    expect = float(np.mean([np.mean(v) for v in per_patient.values()]))
    assert logged == pytest.approx(expect, abs=1e-3)
    val_records = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "val"]
    assert max(r["psnr"] for r in val_records) == pytest.approx(logged)


def test_rerun_needs_resume_and_resume_continues(
    trained: Path, tmp_path: Path, run_cli: Any
) -> None:
    shutil.copytree(trained / "run", tmp_path / "run")
    cfg = trained / "train.yaml"
    out = ["--output-dir", str(tmp_path / "run")]
    again = run_cli("train", "--config", cfg, *out)
    assert again.exit_code == 2 and "--resume" in again.stderr
    more = run_cli("train", "--config", cfg, *out, "--resume", "--set", "steps=6")
    assert more.exit_code == 0, more.stderr
    assert load_state(tmp_path / "run" / "state" / "last.pt")["progress"]["step"] == 6
    recs = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_resume_without_a_checkpoint_starts_fresh(
    trained: Path, tmp_path: Path, run_cli: Any
) -> None:
    """Killed before the first checkpoint: --resume says so and trains from step 0."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text((trained / "run" / "config.yaml").read_text())  # left over
    res = run_cli(
        "train", "--config", trained / "train.yaml", "--output-dir", run, "--resume",
        "--set", "steps=2",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "no resume state at" in res.stderr and "starting fresh" in res.stderr
    recs = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2]


def test_perceptual_without_weights_names_the_fix(
    tmp_path: Path, cohort: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-hub"))
    cfg = _config(
        tmp_path, cohort, loss={"perceptual": {"weight": 0.02, "vgg_weights": "imagenet"}}
    )
    res = run_cli("train", "--config", cfg)
    assert res.exit_code == 4
    assert "ldct weights" in res.stderr
    assert not (tmp_path / "run" / "final.pt").exists()


def test_unknown_config_key_is_a_usage_error(tmp_path: Path, cohort: Path, run_cli: Any) -> None:
    res = run_cli("train", "--config", _config(tmp_path, cohort), "--set", "optim.lrr=0.1")
    assert res.exit_code == 2
    assert "optim.lrr" in res.stderr


def test_config_files_in_repo_validate() -> None:
    from pipeline.train.config import load_train_config

    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("train_demo.yaml", "train_reference.yaml"):
        cfg = load_train_config(root / name)
        assert cfg.model.name == "drle"
        json.dumps(cfg.model_dump(mode="json"))


def test_every_training_config_in_repo_validates_and_builds_its_model() -> None:
    """Every variant has its config (issue 15): each must parse and name a buildable model."""
    from pipeline.models.registry import build_model
    from pipeline.train.config import load_train_config

    root = Path(__file__).resolve().parents[2] / "configs"
    names = sorted(p.name for p in root.glob("train_*.yaml"))
    assert {"train_default.yaml", "train_ablation_perceptual.yaml"} <= set(names)
    for name in names:
        cfg = load_train_config(root / name)
        build_model(cfg.model.name, **cfg.model.params)
    default = load_train_config(root / "train_default.yaml")
    assert default.model.name == "unet-nn-s"
    assert default.data.simulated_target == "expected_full"


def test_init_weights_allows_weight_free_parameter_changes(tmp_path: Path) -> None:
    """Fine-tuning with the low-cut guard switched on loads the weights; other widths do not."""
    from pipeline.errors import ConfigError
    from pipeline.models.checkpoint import save_checkpoint
    from pipeline.models.registry import build_model
    from pipeline.train.config import TrainConfig
    from pipeline.train.run import init_from_checkpoint

    feats = [4, 4, 8, 8, 8, 4]
    src = build_model("unet-nn", features=feats)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.1)
    ck = save_checkpoint(
        tmp_path / "src.pt", src, {"name": "unet-nn", "params": {"features": feats}}
    )

    def cfg(**params: Any) -> TrainConfig:
        return TrainConfig.model_validate(
            {
                "output_dir": str(tmp_path / "out"),
                "init_weights": str(ck),
                "data": {"simulated": str(tmp_path)},
                "model": {"name": "unet-nn", "params": params},
            }
        )

    guarded = build_model("unet-nn", features=feats, lowcut_sigma=8.0)
    info = init_from_checkpoint(guarded, cfg(features=feats, lowcut_sigma=8.0))
    assert info["params_changed"] == {"lowcut_sigma": [0.0, 8.0]}
    for a, b in zip(src.state_dict().values(), guarded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    headed = build_model("unet-nn", features=feats, head_features=4)
    info = init_from_checkpoint(headed, cfg(features=feats, head_features=4))
    assert info["fresh"] and all(k.startswith("head.") for k in info["fresh"])
    wider = [8, 8, 8, 8, 8, 8]
    with pytest.raises(ConfigError, match=r"src\.pt.*do not fit"):
        init_from_checkpoint(build_model("unet-nn", features=wider), cfg(features=wider))
