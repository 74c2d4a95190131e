"""`ldct demo` end to end at reduced size: cohort, denoise (bundled model), evaluate, report."""

from __future__ import annotations

import importlib.util

import pandas as pd


def test_demo_pipeline_small(run_cli, tmp_path):
    out = tmp_path / "demo"
    result = run_cli(
        "demo", "--out", out, "--patients", "2", "--slices", "2", "--size", "96", "--seed", "5"
    )
    assert result.exit_code == 0, result.stderr[-2000:]
    report = out / "qa" / "report" / "index.html"
    assert report.is_file()
    assert str(report.resolve()) in result.stdout
    assert "PSNR vs full dose (redcnn)" in result.stdout
    # the printed headline equals the evaluation table (no number printed that is not measured)
    cohort = pd.read_csv(out / "qa" / "evaluation" / "cohort.csv")
    psnr = cohort[(cohort["profile"] == "redcnn") & (cohort["metric"] == "psnr")]
    low = psnr[psnr["comparison"] == "low_vs_full"]["mean"].iloc[0]
    assert f"low dose {low:.3f} dB" in result.stdout
    if importlib.util.find_spec("bm3d") is not None:  # optional extra: BM3D on the same slices
        bm3d = psnr[psnr["comparison"] == "bm3d_vs_full"]["mean"].iloc[0]
        assert f"BM3D {bm3d:.3f} dB ({bm3d - low:+.3f})" in result.stdout
    manifest = pd.read_csv(out / "denoised" / "manifest.csv")
    assert (manifest["status"] == "ok").all() and len(manifest) == 2
    assert "bundled demo model" in result.stdout
    # a second run reuses the cohort and resumes the denoising (nothing recomputed)
    again = run_cli("demo", "--out", out, "--patients", "2", "--slices", "2", "--size", "96")
    assert again.exit_code == 0
    assert "reusing the demo cohort" in again.stderr
