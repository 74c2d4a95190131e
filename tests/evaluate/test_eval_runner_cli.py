"""End to end: demo cohort -> denoised trees -> ``ldct evaluate`` tables, pairing, flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from pipeline.io.read import read_volume
from pipeline.io.write import write_derived_series
from pipeline.simulate.cohort import make_demo_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    data = root / "data"
    make_demo_cohort(data, n_patients=2, n_slices=4, size=128, seed=3)
    plain, grid = root / "den_plain", root / "den_grid"
    yy, xx = np.mgrid[0:128, 0:128]
    checker = 20.0 * np.where((yy + xx) % 2 == 0, 1.0, -1.0)  # period-2 checkerboard, 20 HU
    for pdir in sorted(p for p in data.iterdir() if p.is_dir()):
        low = read_volume(pdir / "quarter_dose")
        smooth = np.stack([ndi.gaussian_filter(s, 1.2) for s in low.hu])
        keep = low.padding_mask if low.padding_mask is not None else np.zeros_like(smooth, bool)
        smooth = np.where(keep, low.hu, smooth)
        for out, hu, key in ((plain, smooth, "plain"), (grid, smooth + checker, "grid")):
            write_derived_series(
                low,
                hu,
                out / pdir.name,
                series_description=f"denoised {key}",
                derivation_description=f"test {key}",
                uid_key=f"test-{key}",
            )
    return {"data": data, "plain": plain, "grid": grid, "root": root}


def test_evaluate_full_reference_tables(cohort: dict[str, Path], run_cli) -> None:  # type: ignore[no-untyped-def]
    out = cohort["root"] / "out_plain"
    res = run_cli(
        "evaluate",
        "--full",
        str(cohort["data"]),
        "--low",
        str(cohort["data"]),
        "--denoised",
        str(cohort["plain"]),
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.stderr + res.stdout
    for name in ("per_slice", "per_patient", "cohort", "tests", "roi", "qa", "nps", "artifacts"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.parquet").is_file()
    ps = pd.read_parquet(out / "per_slice.parquet")
    assert set(ps["patient"]) == {"DEMO001", "DEMO002"}
    assert set(ps["comparison"]) == {"low_vs_full", "denoised_vs_full"}
    assert set(ps["profile"]) == {"redcnn", "ldctbench-abdomen", "hu"}
    assert len(ps) == 2 * 4 * 2 * (2 + 2 + 2)  # patients x slices x comparisons x metrics
    # the per-patient mean is the mean of that patient's slice values
    pp = pd.read_csv(out / "per_patient.csv")
    sel = ps[
        (ps.patient == "DEMO001")
        & (ps.comparison == "low_vs_full")
        & (ps.metric == "psnr")
        & (ps.profile == "redcnn")
    ]
    row = pp[
        (pp.patient == "DEMO001")
        & (pp.comparison == "low_vs_full")
        & (pp.metric == "psnr")
        & (pp.profile == "redcnn")
    ].iloc[0]
    assert row["mean"] == pytest.approx(sel["value"].mean())
    # denoising (smoothing) lowers noise: ROI SD ratio < 1 and no grid flag on the plain series
    qa = pd.read_csv(out / "qa.csv")
    assert (qa[qa.role == "denoised"]["sd_ratio_vs_low"] < 0.9).all()
    # TG-233 noise-only SD: the quarter-dose input has twice the full dose's (1/sqrt(0.25))
    by = qa.set_index(["patient", "role"])["noise_sd_hu"]
    for p in ("DEMO001", "DEMO002"):
        assert by[(p, "low")] / by[(p, "full")] == pytest.approx(2.0, rel=0.2)
    nps = pd.read_csv(out / "nps.csv")
    assert set(nps["method"]) == {"adjacent", "minus_full"}
    ins = pd.read_csv(out / "inserts.csv")  # the cohort's lesions, found through pair.json
    assert set(ins["patient"]) == {"DEMO001", "DEMO002"} and (ins["n_slices_used"] >= 0).all()
    assert {"ttf50_cyc_mm", "dprime_npwe", "ttf50_ratio_vs_full"} <= set(qa.columns)
    art = pd.read_csv(out / "artifacts.csv")
    assert not art["flagged"].any(), art["evidence"].tolist()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profiles"]["redcnn"]["data_range"] == 400
    assert summary["patients"][0]["series"]["denoised"]
    assert "SourceImageSequence" in summary["pairing_rule"]
    assert summary["provenance"]["packages"]["torch"]


def test_evaluate_flags_checkerboard_no_reference(cohort: dict[str, Path], run_cli) -> None:  # type: ignore[no-untyped-def]
    out = cohort["root"] / "out_grid"
    low_tree = cohort["data"]
    res = run_cli(
        "evaluate",
        "--low",
        str(low_tree / "DEMO001" / "quarter_dose"),
        "--denoised",
        str(cohort["grid"]),
        "--out",
        str(out),
    )
    # DEMO002's denoised series has no low-dose source here -> reported, exit code 1
    assert res.exit_code == 1
    art = pd.read_csv(out / "artifacts.csv")
    assert art["flagged"].all()
    assert "period 2 px (xy)" in art["evidence"].iloc[0]
    assert not (out / "per_slice.csv").read_text().strip().splitlines()[1:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "no-reference" and summary["problems"]


def test_baselines_are_evaluated_like_the_denoised_series_and_shown(
    cohort: dict[str, Path], run_cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """--baseline DIR (e.g. ldct denoise --model nlm): extra comparisons, qa rows, columns."""
    out = tmp_path / "qa"
    res = run_cli(
        "qa",
        "--full",
        str(cohort["data"]),
        "--low",
        str(cohort["data"]),
        "--denoised",
        str(cohort["plain"]),
        "--baseline",
        str(cohort["grid"]),
        "--out",
        str(out),
    )
    assert res.exit_code in (0, 1), res.stdout + res.stderr
    ev = out / "evaluation"
    pp = pd.read_csv(ev / "per_patient.csv")
    assert "den_grid_vs_full" in set(pp["comparison"])
    g = pp[(pp.comparison == "den_grid_vs_full") & (pp.metric == "psnr") & (pp.profile == "redcnn")]
    ps = pd.read_csv(ev / "per_slice.csv")
    sel = ps[(ps.comparison == "den_grid_vs_full") & (ps.metric == "psnr")]
    sel = sel[(sel.profile == "redcnn") & (sel.patient == "DEMO001")]
    assert g[g.patient == "DEMO001"]["mean"].iloc[0] == pytest.approx(sel["value"].mean())
    qa = pd.read_csv(ev / "qa.csv")
    assert "den_grid" in set(qa["role"])
    summary = json.loads((ev / "summary.json").read_text())
    assert list(summary["inputs"]["baselines"]) == ["den_grid"]
    for info in summary["patients"]:  # the report finds the baseline series by its folder
        (folder,) = info["series_folders"]["den_grid"]["folders"]
        assert Path(folder).parent == cohort["grid"].resolve()
    index = (out / "report" / "index.html").read_text()
    assert "PSNR den_grid [dB]" in index and "SSIM den_grid" in index
    page = next((out / "report" / "patients").glob("*.html")).read_text()
    assert "den_grid (baseline)" in page
    res = run_cli(
        "evaluate", "--low", str(cohort["data"]), "--full", str(cohort["data"]),
        "--baseline", str(cohort["plain"]), "--baseline", str(cohort["plain"]),
        "--out", str(tmp_path / "dup"),
    )  # fmt: skip
    assert res.exit_code == 2 and "two baselines named" in res.stderr + res.stdout
