"""A randomly initialised transposed-conv U-Net (``unet-deconv``) leaves a period-2 grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.evaluate.artifacts import score_slice
from pipeline.evaluate.qa import inner_mask
from pipeline.intensity import hu_to_model, model_to_hu


@pytest.mark.slow
@pytest.mark.parametrize("name,expect_flag", [("unet-deconv", True), ("unet", False)])
def test_deconv_model_flagged_bilinear_not(name: str, expect_flag: bool) -> None:
    from pipeline.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(name).eval()
    for m in model.modules():  # the registry zero-inits output layers (identity at start)
        w = getattr(m, "weight", None)
        if isinstance(w, torch.Tensor) and w.ndim > 1 and not w.any():
            m.reset_parameters()  # type: ignore[operator]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128]
    body = ((yy - 64) / 55.0) ** 2 + ((xx - 64) / 60.0) ** 2 <= 1
    low = np.where(body, 40.0, -1000.0) + 25.0 * rng.standard_normal((128, 128))
    with torch.inference_mode():
        x = hu_to_model(torch.from_numpy(low).float())[None, None]
        den = model_to_hu(model(x))[0, 0].double().numpy()
    res = score_slice(den - low, inner_mask(body), input_hu=low)
    assert res.flagged is expect_flag, (res.score_db, res.top)
    if expect_flag:
        assert res.top is not None and res.top.period_px == 2
