"""Round-trip and property tests for the intensity mappings (the one home of HU transforms)."""

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.intensity import (
    MODEL_RANGE_HU,
    WINDOWS,
    Window,
    apply_window,
    clip_to_window,
    get_window,
    hu_to_model,
    model_to_hu,
    model_to_window,
    unwindow,
)


def test_model_range_endpoints_and_roundtrip_numpy():
    hu = np.array([-1024.0, 3071.0, 0.0, -3024.0, 5000.0], dtype=np.float64)
    x = hu_to_model(hu)
    assert x[0] == 0.0 and x[1] == 1.0
    assert x[2] == pytest.approx(1024.0 / 4095.0)
    np.testing.assert_allclose(model_to_hu(x), hu, rtol=0, atol=1e-9)  # not clipped


def test_model_range_roundtrip_torch_float32_within_quantum():
    hu = torch.linspace(-2000, 4000, 10001)
    back = model_to_hu(hu_to_model(hu))
    assert back.dtype == torch.float32
    assert torch.max(torch.abs(back - hu)).item() < 1e-3


def test_soft_tissue_window_is_red_cnn_range():
    w = get_window("soft_tissue")
    assert (w.lo_hu, w.hi_hu) == (-160.0, 240.0)
    out = apply_window(np.array([-1000.0, -160.0, 40.0, 240.0, 1000.0]), w)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_window_inverse_exact_inside(name):
    w = WINDOWS[name]
    hu = np.linspace(w.lo_hu, w.hi_hu, 257)
    np.testing.assert_allclose(unwindow(apply_window(hu, w), w), hu, atol=1e-9)


def test_clip_to_window_is_windowed_round_trip_in_hu():
    hu = np.array([-1000.0, -160.0, 0.0, 239.5, 240.0, 3000.0])
    np.testing.assert_array_equal(
        clip_to_window(hu, "soft_tissue"), [-160, -160, 0, 239.5, 240, 240]
    )
    t = torch.linspace(-1500.0, 2000.0, 301)
    np.testing.assert_allclose(
        clip_to_window(t, "lung").numpy(),
        unwindow(apply_window(t, "lung"), "lung").numpy(),
        atol=1e-3,
    )


def test_model_to_window_equals_composition():
    x = torch.rand(2, 1, 8, 8)
    np.testing.assert_allclose(
        model_to_window(x, "lung").numpy(),
        apply_window(model_to_hu(x), "lung").numpy(),
        atol=1e-7,
    )


def test_window_specs_and_errors():
    assert get_window("1500/-600") == Window("1500/-600", 1500.0, -600.0)
    w = get_window((-160.0, 240.0))
    assert (w.width_hu, w.level_hu) == (400.0, 40.0)
    with pytest.raises(ConfigError, match="did you mean 'lung'"):
        get_window("lungs")
    with pytest.raises(ConfigError, match="width must be > 0"):
        Window("bad", 0.0, 0.0)


def test_model_window_matches_model_range():
    w = WINDOWS["model"]
    assert (w.lo_hu, w.hi_hu) == MODEL_RANGE_HU


def test_dicom_window_formula_round_trip_and_ldctbench_values() -> None:
    """(x - (c - 0.5)) / (w - 1) + 0.5, clipped; exact inverse inside the window."""
    import numpy as np

    from pipeline.intensity import Window, apply_window_dicom, unwindow_dicom

    w = Window("neuro", 80.0, 40.0)
    hu = np.linspace(0.0, 80.0, 41)
    x = apply_window_dicom(hu, w)
    np.testing.assert_allclose(x, np.clip((hu - 39.5) / 79.0 + 0.5, 0, 1), atol=0)
    inside = (x > 0) & (x < 1)
    np.testing.assert_allclose(unwindow_dicom(x, w)[inside], hu[inside], atol=1e-12)
    assert apply_window_dicom(np.array([0.0]), w)[0] == 0.0  # lower bound c - 0.5 - (w-1)/2
    assert apply_window_dicom(np.array([79.0]), w)[0] == 1.0


def test_every_profile_window_is_a_registry_entry() -> None:
    """Metric profiles, loss and report defaults name windows of the one registry (no inline
    ``Window(...)`` that could drift from it)."""
    from pipeline.evaluate.profiles import PROFILES
    from pipeline.losses.objective import LossConfig, PerceptualConfig
    from pipeline.report.config import ReportConfig

    windowed = [p for p in PROFILES.values() if p.window is not None]
    assert {p.name for p in windowed} >= {"redcnn", "ldctbench-abdomen", "ldctbench-chest"}
    for p in windowed:
        assert p.window is WINDOWS[p.window.name], p.name
    # LDCT-Bench's published per-anatomy windows (width/level), as its tables state them
    assert (WINDOWS["ldctbench_abdomen"].width_hu, WINDOWS["ldctbench_abdomen"].level_hu) == (
        400.0,
        50.0,
    )
    assert (WINDOWS["ldctbench_chest"].lo_hu, WINDOWS["ldctbench_chest"].hi_hu) == (-1350.0, 150.0)
    assert (WINDOWS["ldctbench_neuro"].lo_hu, WINDOWS["ldctbench_neuro"].hi_hu) == (0.0, 80.0)
    named = [*ReportConfig().panel_windows, *PerceptualConfig().windows, LossConfig().ssim_window]
    for name in named:
        assert get_window(name) is WINDOWS[name]


def test_conventions_doc_lists_the_window_registry() -> None:
    """docs/conventions.md's window table is the registry (names, width/level, range)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "conventions.md").read_text("utf-8")
    rows = re.findall(
        r"^\| (`[^|]+`) \| ([-\d.]+) / ([-\d.]+) \| \[([-\d.]+), ([-\d.]+)\]", doc, re.M
    )
    documented = {}
    for names, width, level, lo, hi in rows:
        for name in re.findall(r"`(\w+)`", names):
            documented[name] = (float(width), float(level), float(lo), float(hi))
    registry = {n: (w.width_hu, w.level_hu, w.lo_hu, w.hi_hu) for n, w in WINDOWS.items()}
    assert documented == registry
