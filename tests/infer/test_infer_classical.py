"""``ldct denoise --model nlm|bm3d``: the non-learned baselines through the real denoise path."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from infer_helpers import write_series
from skimage.restoration import denoise_nl_means

from pipeline.io.read import read_volume
from pipeline.models.classical import ClassicalConfig, config_sha256, estimate_noise_sd_hu

SET = ("--set", "read_workers=1")


def _uniform(vol: np.ndarray) -> np.ndarray:
    """A soft-tissue square of the infer_helpers phantom, away from the bone disc and edge."""
    n, c = vol.shape[1], vol.shape[1] // 2
    return vol[:, c + int(0.14 * n) : c + int(0.32 * n), c - n // 10 : c + n // 10]


def _nlm_direct(hu: np.ndarray, sigma: float) -> np.ndarray:
    s = sigma / 400.0
    out = denoise_nl_means(
        (hu.astype(np.float64) + 160.0) / 400.0,
        h=s,
        sigma=s,
        patch_size=5,
        patch_distance=6,
        fast_mode=True,
    )
    return out * 400.0 - 160.0


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "manifest.json").read_text())["rows"]


def test_nlm_through_denoise_reduces_noise_keeps_mean_matches_skimage(
    tmp_path: Path, run_cli: Callable
) -> None:
    write_series(tmp_path / "in" / "p1", n_slices=2, rows=64, cols=64)
    out = tmp_path / "out"
    res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", "nlm", *SET)
    assert res.exit_code == 0, res.stdout + res.stderr
    (row,) = _rows(out)
    assert row["model_name"] == "nlm"
    assert row["model_sha256"] == config_sha256("nlm", ClassicalConfig())
    src, der = read_volume(row["input_path"]), read_volume(row["output_path"])
    u_src, u_der = _uniform(src.hu), _uniform(der.hu)
    assert u_der.std() < 0.5 * u_src.std()  # phantom noise SD 25 HU
    assert abs(u_der.mean() - u_src.mean()) < 3.0
    # oracle: scikit-image called directly on the same slices with the blind sigma
    for z in range(src.hu.shape[0]):
        ref = _nlm_direct(src.hu[z], estimate_noise_sd_hu(src.hu[z]))
        np.testing.assert_allclose(der.hu[z], ref, atol=0.51)  # stored as integer HU
    ds = pydicom.dcmread(der.slices[0].path)
    assert "nlm" in ds.SeriesDescription
    assert "non-learned denoiser nlm" in ds.DerivationDescription
    assert "config sha256 " + row["model_sha256"] in ds.DerivationDescription
    assert "weights" not in ds.DerivationDescription


def test_nlm_sigma_override(tmp_path: Path, run_cli: Callable) -> None:
    write_series(tmp_path / "in" / "p1", n_slices=1, rows=48, cols=48)
    out = tmp_path / "out"
    sets = ("--set", "classical.sigma_hu=8", *SET)
    res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", "nlm", *sets)
    assert res.exit_code == 0, res.stderr
    (row,) = _rows(out)
    assert row["model_sha256"] == config_sha256("nlm", ClassicalConfig(sigma_hu=8.0))
    src, der = read_volume(row["input_path"]), read_volume(row["output_path"])
    np.testing.assert_allclose(der.hu[0], _nlm_direct(src.hu[0], 8.0), atol=0.51)


def test_classical_refuses_bf16_and_dry_run_names_config_hash(
    tmp_path: Path, run_cli: Callable
) -> None:
    write_series(tmp_path / "in" / "p1", n_slices=1)
    out = tmp_path / "out"
    res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", "nlm", "--precision", "bf16")
    assert res.exit_code == 2 and "bf16 does not apply" in " ".join(res.stderr.split())
    res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", "nlm", "--dry-run")
    assert res.exit_code == 0 and "Model: nlm (fp64) (config sha256" in res.stdout
    assert not out.exists()


def test_bm3d_missing_exits_4_with_install_hint(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_series(tmp_path / "in" / "p1", n_slices=1)
    monkeypatch.setitem(sys.modules, "bm3d", None)  # as if the extra were not installed
    res = run_cli("denoise", tmp_path / "in", "--out", tmp_path / "out", "--model", "bm3d")
    assert res.exit_code == 4
    assert "pip install 'ldct-pipeline[baselines]'" in " ".join(res.stderr.split())
    assert not (tmp_path / "out").exists()


def test_bm3d_through_denoise(tmp_path: Path, run_cli: Callable) -> None:
    bm3d = pytest.importorskip("bm3d", reason="bm3d is the optional [baselines] extra")
    write_series(tmp_path / "in" / "p1", n_slices=1, rows=48, cols=48)
    out = tmp_path / "out"
    res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", "bm3d", *SET)
    assert res.exit_code == 0, res.stdout + res.stderr
    (row,) = _rows(out)
    assert row["model_name"] == "bm3d"
    assert row["model_sha256"] == config_sha256("bm3d", ClassicalConfig())
    src, der = read_volume(row["input_path"]), read_volume(row["output_path"])
    sigma = estimate_noise_sd_hu(src.hu[0])
    ref = bm3d.bm3d((src.hu[0].astype(np.float64) + 160.0) / 400.0, 2.0 * sigma / 400.0)
    np.testing.assert_allclose(der.hu[0], ref * 400.0 - 160.0, atol=0.6)
    assert _uniform(der.hu).std() < 0.5 * _uniform(src.hu).std()
    assert (
        "non-learned denoiser bm3d (bm3d 4."
        in pydicom.dcmread(der.slices[0].path).DerivationDescription
    )
