"""The optional SSIM term of the objective: value == 1 - skimage SSIM, and it back-propagates."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from pipeline.errors import ConfigError
from pipeline.intensity import apply_window, hu_to_model
from pipeline.losses.objective import LossConfig, build_objective


def test_ssim_term_matches_skimage_and_has_gradient():
    rng = np.random.default_rng(0)
    full_hu = rng.normal(40, 30, (1, 1, 48, 48)).astype(np.float32)
    low_hu = full_hu + rng.normal(0, 25, full_hu.shape).astype(np.float32)
    cfg = LossConfig.model_validate(
        {"mse_weight": 0.0, "ssim_weight": 1.0, "perceptual": {"weight": 0.0}}
    )
    objective = build_objective(cfg)
    pred = torch.from_numpy(hu_to_model(low_hu)).requires_grad_(True)
    total, parts = objective(pred, torch.from_numpy(hu_to_model(full_hu)))
    expected = 1.0 - structural_similarity(
        apply_window(low_hu[0, 0], "soft_tissue"),
        apply_window(full_hu[0, 0], "soft_tissue"),
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert parts["ssim"].item() == pytest.approx(expected, abs=2e-5)
    assert total.item() == pytest.approx(expected, abs=2e-5)
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_ssim_window_validated():
    with pytest.raises(ConfigError):
        LossConfig.model_validate({"ssim_weight": 1.0, "ssim_window": "lungz"})
