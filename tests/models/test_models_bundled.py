"""The bundled demo model: present, checksum-verified, loadable, and honest about its training."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import CheckpointError
from pipeline.models import bundled
from pipeline.models.checkpoint import load_checkpoint
from pipeline.utils.files import sha256_file


def test_bundled_model_verifies_and_loads() -> None:
    path = bundled.bundled_model_path()
    assert path.stat().st_size < 10 * 1024 * 1024  # issue 15: the shipped checkpoint stays small
    assert sha256_file(path) == bundled.bundled_model_sha256()
    ck = load_checkpoint(path)
    extra = ck.meta.get("extra", ck.meta)
    # MONAI-based with the Sobel edge layer, blind (noise-normalised): docs/model-card.md
    assert ck.model_cfg["name"] == "unet-nn-s"
    from monai.networks.nets import BasicUNet

    from pipeline.models.sobel import SobelEdges

    assert any(isinstance(m, BasicUNet) for m in ck.model.modules())
    assert any(isinstance(m, SobelEdges) for m in ck.model.modules())
    # trained on generated data only, with an envelope the guardrail can use on real series
    env = extra["training_envelope"]
    assert env["source"] == "simulated" and env["kernels"] == [] and env["matrix"] == []
    assert extra["config"]["data"]["simulated_target"] == "expected_full"
    # MSE + perceptual (stage 4): the VGG16 weights are seeded random ones, and labelled so
    assert extra["vgg_weights"] == "random (untrained)"
    perceptual = extra["config"]["loss"]["perceptual"]
    assert perceptual["weight"] > 0 and perceptual["vgg_weights"] == "random"
    # the classical prior: the image's NLM enters the network (models.md, nlm_prior)
    assert ck.model_cfg["params"]["nlm_prior"] is True
    assert extra["code"]["version"] and extra["data_manifest_sha256"]


#: recorded in the bundled checkpoint, removed from the schema since: never read by the trainer
#: (the validation batch size has always been ``data.eval_batch_size``)
NEVER_READ_KEYS = {".validation.batch_size"}


def test_bundled_model_config_is_the_default_recipe() -> None:
    from pipeline.train.config import load_train_config

    extra = load_checkpoint(bundled.bundled_model_path()).meta["extra"]
    recipe = load_train_config(Path(__file__).resolve().parents[2] / "configs/train_default.yaml")
    want = recipe.model_dump(mode="json")
    got = dict(extra["config"])
    want.pop("output_dir"), got.pop("output_dir")
    # every recorded value equals the recipe's (keys added to the schema later are ignored;
    # keys removed later because the trainer never read them cannot have changed the training)
    assert [m for m in _mismatches(got, want) if m not in NEVER_READ_KEYS] == []


def _mismatches(recorded: Any, current: Any, where: str = "") -> list[str]:
    if isinstance(recorded, dict) and isinstance(current, dict):
        return [
            m
            for k, v in recorded.items()
            for m in (
                _mismatches(v, current[k], f"{where}.{k}") if k in current else [f"{where}.{k}"]
            )
        ]
    return [] if recorded == current else [f"{where}: {recorded!r} != {current!r}"]


def test_checksum_mismatch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(bundled.bundled_model_path(), assets / bundled.DEMO_MODEL_NAME)
    (assets / bundled.DEMO_MODEL_SHA256_NAME).write_text("0" * 64 + "  demo_model.pt\n")
    monkeypatch.setattr(bundled, "_assets", lambda: assets)
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        bundled.bundled_model_path()
    (assets / bundled.DEMO_MODEL_NAME).unlink()
    with pytest.raises(CheckpointError, match="no bundled demo model"):
        bundled.bundled_model_path()


def test_bundled_model_keeps_mean_hu_on_a_noisy_water_disc() -> None:
    """HU fidelity: denoising removes noise, not HU (the stage-1 model shifted this by -2.3 HU).

    A 40 HU disc in air with correlated noise of 25 HU SD: inside it the bundled model must keep
    the mean within 0.5 HU of the input's and remove at least 40 % of the noise SD.
    """
    import numpy as np
    import torch
    from scipy.ndimage import gaussian_filter

    from pipeline.intensity import hu_to_model, model_to_hu

    model = load_checkpoint(bundled.bundled_model_path()).model.eval()
    n = 192
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - n / 2, xx - n / 2)
    noise = gaussian_filter(np.random.default_rng(0).normal(size=(n, n)), 0.8)
    low = (np.where(r < 80, 40.0, -1000.0) + noise * (25.0 / noise.std())).astype(np.float32)
    with torch.inference_mode():
        x = hu_to_model(torch.from_numpy(low)[None, None])
        out = model_to_hu(model(x))[0, 0].numpy()
    roi = r < 60
    assert abs(float(out[roi].mean() - low[roi].mean())) < 0.5
    assert float(out[roi].std()) < 0.6 * float(low[roi].std())
