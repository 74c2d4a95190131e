"""Non-learned baselines (models.classical): blind noise estimate, NLM/BM3D vs direct calls."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_nl_means, estimate_sigma

from pipeline.errors import DependencyError, ExitCode
from pipeline.models import classical as C


def _disk_slice(n: int, noise: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    body = np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2) < 0.42 * n
    return np.where(body, 40.0 + noise, -1000.0).astype(np.float32)


def test_noise_estimate_white_noise() -> None:
    white = np.random.default_rng(0).normal(0.0, 20.0, (128, 128))
    assert C.estimate_noise_sd_hu(_disk_slice(128, white)) == pytest.approx(20.0, rel=0.15)


@pytest.mark.parametrize("kernel", ["ramp", "hann", "cosine"])
def test_noise_estimate_ct_noise_any_kernel(kernel: str) -> None:
    """FBP-reconstructed white sinogram noise (band-pass, correlated) of known pixel SD."""
    from pipeline.simulate.geometry import ParallelGeometry
    from pipeline.simulate.projector import fbp

    g = ParallelGeometry.for_image(128, 1.0)
    gen = torch.Generator().manual_seed(3)
    noise = fbp(torch.randn(1, g.n_views, g.n_det, generator=gen), g, kernel)[0].double().numpy()
    img = _disk_slice(128, noise)
    body = img > -500
    noise *= 20.0 / noise[body].std()
    img = _disk_slice(128, noise)
    # the low percentile reads pure noise 10-20 % low (tissue texture pushes it up again)
    assert C.estimate_noise_sd_hu(img) == pytest.approx(20.0, rel=0.25)
    if kernel != "ramp":  # the white-noise wavelet estimator reads smoothed CT noise far too low
        assert estimate_sigma(np.where(body, img, 40.0)) < 0.6 * 20.0


def test_noise_estimate_flat_slice_is_zero_and_denoisers_pass_it_through() -> None:
    flat = _disk_slice(64, np.zeros((64, 64)))
    assert C.estimate_noise_sd_hu(flat) == 0.0
    np.testing.assert_array_equal(C.nlm_slice(flat, 0.0, C.ClassicalConfig()), flat)


def test_scale_round_trip() -> None:
    hu = np.array([-1024.0, -160.0, 40.0, 240.0, 3071.0])
    np.testing.assert_allclose(C.to_scale(hu)[[1, 3]], [0.0, 1.0])
    np.testing.assert_allclose(C.from_scale(C.to_scale(hu)), hu, atol=1e-3)


def test_nlm_slice_equals_skimage_called_directly() -> None:
    img = _disk_slice(64, np.random.default_rng(1).normal(0, 25, (64, 64)))
    cfg = C.ClassicalConfig(nlm_h_factor=0.9, nlm_patch_size=5, nlm_patch_distance=4)
    ours = C.nlm_slice(img, 25.0, cfg)
    s = 25.0 / 400.0
    ref = denoise_nl_means(
        (img.astype(np.float64) + 160.0) / 400.0,
        h=0.9 * s,
        sigma=s,
        patch_size=5,
        patch_distance=4,
        fast_mode=True,
    )
    np.testing.assert_allclose(ours, ref * 400.0 - 160.0, atol=1e-3)


def test_config_hash_tracks_method_and_parameters() -> None:
    base = C.ClassicalConfig()
    h = C.config_sha256("nlm", base)
    assert len(h) == 64 and h == C.config_sha256("nlm", C.ClassicalConfig())
    assert h != C.config_sha256("bm3d", base)
    assert h != C.config_sha256("nlm", C.ClassicalConfig(nlm_h_factor=1.2))
    assert h != C.config_sha256("nlm", C.ClassicalConfig(sigma_hu=10.0))
    # a BM3D-only parameter does not change the NLM hash
    assert h == C.config_sha256("nlm", C.ClassicalConfig(bm3d_sigma_factor=3.0))


def test_is_classical() -> None:
    assert C.is_classical("bm3d") and C.is_classical("NLM")
    assert not C.is_classical(None) and not C.is_classical("./bm3d") and not C.is_classical("x.pt")


def test_bm3d_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bm3d", None)  # import bm3d -> ImportError
    with pytest.raises(DependencyError) as err:
        C.bm3d_slice(np.zeros((16, 16), np.float32), 10.0, C.ClassicalConfig())
    assert "pip install 'ldct-pipeline[baselines]'" in str(err.value)
    assert "non-commercial" in str(err.value)
    assert err.value.exit_code == ExitCode.RESOURCE


def test_bm3d_slice_equals_bm3d_called_directly() -> None:
    bm3d = pytest.importorskip("bm3d", reason="bm3d is the optional [baselines] extra")
    img = _disk_slice(48, np.random.default_rng(2).normal(0, 25, (48, 48)))
    ours = C.bm3d_slice(img, 25.0, C.ClassicalConfig(bm3d_sigma_factor=1.5))
    ref = bm3d.bm3d((img.astype(np.float64) + 160.0) / 400.0, sigma_psd=1.5 * 25.0 / 400.0)
    # bm3d's multi-threaded aggregation may differ in the last float bits between calls
    np.testing.assert_allclose(ours, ref * 400.0 - 160.0, atol=1e-2)
    inside = img > -500
    assert np.std(ours[inside]) < 0.5 * np.std(img[inside])
