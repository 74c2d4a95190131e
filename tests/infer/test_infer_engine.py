"""Denoiser engine: HU round trip, batching, memory-driven tiling without seams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from infer_helpers import phantom
from torch import nn

from pipeline.infer.config import TilingConfig
from pipeline.infer.engine import Denoiser, plan_batches, receptive_radius
from pipeline.infer.tiling import tile_starts, tiled_apply
from pipeline.models.registry import build_model


def _random_drle(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = build_model("drle", channels=4)
    nn.init.normal_(m.out.weight, std=0.01)
    return m.eval()


def test_identity_model_reproduces_hu_exactly() -> None:
    hu = phantom(3, 40, 36)
    out = Denoiser(nn.Identity(), batch_size=2).denoise_slices(hu)
    # HU -> model range -> HU in float32: exact up to float rounding of the affine map
    np.testing.assert_allclose(out, hu, atol=1e-3)


def test_in_place_output_and_batching_agree() -> None:
    model = _random_drle()
    hu = phantom(5, 24, 24)
    one = Denoiser(model, batch_size=1).denoise_slices(hu)
    many = Denoiser(model, batch_size=4).denoise_slices(hu)
    inplace = hu.copy()
    Denoiser(model, batch_size=3).denoise_slices(inplace, out=inplace)
    np.testing.assert_allclose(one, many, atol=1e-2)
    np.testing.assert_allclose(inplace, many, atol=1e-2)
    assert np.abs(many - hu).max() > 1.0  # the model does change the image


def test_receptive_radius_of_known_convs() -> None:
    dev = torch.device("cpu")
    conv5 = nn.Conv2d(1, 1, 5, padding=2)
    assert receptive_radius(conv5, dev) == 2
    stack = nn.Sequential(nn.Conv2d(1, 2, 3, padding=2, dilation=2), nn.Conv2d(2, 1, 5, padding=2))
    assert receptive_radius(stack, dev) == 4
    assert receptive_radius(nn.Identity(), dev) == 0


def test_plan_batches_tiles_only_when_budget_requires() -> None:
    cfg = TilingConfig(memory_budget_mb=64)
    whole = plan_batches(512, 512, batch_size=8, bytes_per_pixel=64, tiling=cfg)
    assert whole.tile is None and whole.batch_size == 4  # 4 x 16 MiB fit in 64 MiB
    tiled = plan_batches(512, 512, batch_size=8, bytes_per_pixel=1024, tiling=cfg)
    assert tiled.tile is not None and tiled.tile < 512
    assert tiled.tile**2 * 1024 <= 64 * 2**20
    forced = plan_batches(
        100, 100, batch_size=8, bytes_per_pixel=1, tiling=TilingConfig(max_tile=48)
    )
    assert forced.tile == 48


def test_tile_cores_cover_every_pixel() -> None:
    for length, tile, margin in [(200, 64, 10), (65, 64, 5), (64, 64, 5), (1000, 96, 19)]:
        starts = tile_starts(length, tile, margin)
        covered = np.zeros(length, bool)
        for s in starts:
            lo = s if s == 0 else s + margin
            hi = s + tile if s + tile == length else s + tile - margin
            covered[lo:hi] = True
        assert covered.all(), (length, tile, margin)


@pytest.mark.parametrize(("tile", "overlap"), [(80, 0.25), (96, 0.5)])
def test_tiled_equals_untiled_no_seams(tile: int, overlap: float) -> None:
    from pipeline.evaluate.artifacts import DEFAULT_THRESHOLDS, seam_scan

    model = _random_drle(1)
    hu = phantom(1, 136, 120, seed=3)
    whole = Denoiser(model, batch_size=2).denoise_slices(hu)
    tiled_den = Denoiser(model, batch_size=2, tiling=TilingConfig(max_tile=tile, overlap=overlap))
    assert tiled_den.plan(136, 120).tile == tile
    tiled = tiled_den.denoise_slices(hu)
    assert np.abs(tiled - whole).max() < 0.01  # HU; float rounding only
    for k in range(hu.shape[0]):
        # the random model's residual has anatomy edges (some z already); tiling adds nothing
        base, seam = seam_scan(whole[k] - hu[k]), seam_scan(tiled[k] - hu[k])
        assert seam.z < base.z + 0.5 * DEFAULT_THRESHOLDS.seam_z, (seam.line, base.line)


def test_naive_tiling_would_show_seams() -> None:
    """Positive control: tiles that keep their borders leave a seam the detector finds."""
    from pipeline.evaluate.artifacts import DEFAULT_THRESHOLDS, seam_scan
    from pipeline.intensity import hu_to_model, model_to_hu

    model = _random_drle(1)
    hu = phantom(1, 136, 120, seed=3)
    x = hu_to_model(torch.from_numpy(hu)[:, None])
    with torch.inference_mode():
        whole = model(x)
        naive = tiled_apply(x, model, tile=64, margin=0, batch_size=4)
        good = tiled_apply(x, model, tile=64, margin=receptive_radius(model, x.device) + 1)
    assert (naive - whole).abs().max() > 1000 * (good - whole).abs().max()
    seam = seam_scan(model_to_hu(naive)[0, 0].numpy() - hu[0])
    assert seam.z > DEFAULT_THRESHOLDS.seam_z and seam.line in {"y=64", "x=64"}


def test_plan_tile_fields_are_the_geometry_the_tiler_uses() -> None:
    """The manifest's integer tile fields equal what tiled_apply places (the evaluator reads
    them), and its text says the same for people."""
    from pipeline.records import tile_fields_of

    den = Denoiser(_random_drle(1), batch_size=2, tiling=TilingConfig(max_tile=80, overlap=0.25))
    plan = den.plan(136, 120)
    geometry = den.tile_geometry(plan)
    assert geometry is not None
    tile, margin = geometry
    fields = den.tile_fields(plan)
    assert fields.size_px == tile and fields.overlap_px == 2 * margin
    assert fields.stride_px == tile_starts(136, tile, margin)[1]
    assert fields.text() == f"{tile}x{tile} tiles stride={tile - 2 * margin}"
    assert tile_fields_of(fields.row_fields()) == fields
    assert tile_fields_of({"tiling": fields.text()}) == fields  # an old manifest's text alone
    whole = Denoiser(_random_drle(1), batch_size=2)
    assert whole.tile_fields(whole.plan(136, 120)).text() == "whole slices"
    assert tile_fields_of(whole.tile_fields(whole.plan(136, 120)).row_fields()).whole_slices


def test_tiled_inference_of_a_prior_model_uses_the_whole_slices_prior() -> None:
    """EdgeUNet nlm_prior: tiles get the prior of the whole slice, so tiling changes nothing."""
    from pipeline.intensity import hu_to_model, model_to_hu

    torch.manual_seed(0)
    model = build_model("unet-nn-s", head_features=4, nlm_prior=True).eval()
    with torch.no_grad():
        model.prior_gain.fill_(0.5)  # type: ignore[union-attr]
        for conv in model.prior_in.values():  # type: ignore[union-attr]
            nn.init.normal_(conv.weight, std=0.05)
        nn.init.normal_(model.head[-1].weight, std=0.01)  # type: ignore[index]
    hu = phantom(1, 300, 280, seed=3)
    whole = Denoiser(model, batch_size=1).denoise_slices(hu)
    tiled_den = Denoiser(model, batch_size=2, tiling=TilingConfig(max_tile=96, overlap=0.5))
    tile, margin = tiled_den.tile_geometry(tiled_den.plan(300, 280))  # type: ignore[misc]
    assert tile < 280  # several tiles (the tile grows to 4x the receptive radius)
    tiled = tiled_den.denoise_slices(hu)
    assert np.abs(whole - hu).max() > 1.0  # the prior does act
    assert np.abs(tiled - whole).max() < 0.01  # HU
    # control: tiles that each compute their own prior (sigma of the tile) differ
    x = hu_to_model(torch.from_numpy(hu)[:, None])
    with torch.inference_mode():
        own = model_to_hu(tiled_apply(x, model, tile=tile, margin=margin))[:, 0].numpy()
    assert np.abs(own - whole).max() > 100 * max(np.abs(tiled - whole).max(), 1e-4)
