"""Demo cohort layout, manifest and read-back; ``ldct demo-data`` and ``ldct simulate`` CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pipeline.errors import SimulationError
from pipeline.io.read import read_volume
from pipeline.io.write import write_new_series
from pipeline.simulate.cohort import low_dose_dirname, make_demo_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "demo"
    make_demo_cohort(out, n_patients=2, n_slices=3, size=64, seed=7)
    return out


def test_cohort_layout_and_manifest(cohort: Path) -> None:
    manifest = json.loads((cohort / "cohort.json").read_text())
    assert manifest["format"] == "ldct-demo-cohort" and manifest["dose"] == 0.25
    assert [p["patient"] for p in manifest["patients"]] == ["DEMO001", "DEMO002"]
    for entry in manifest["patients"]:
        for key in ("full", "low"):
            files = sorted((cohort / entry[key]).glob("IM*.dcm"))
            assert len(files) == 3
        assert entry["low"].endswith("/quarter_dose")
        assert (cohort / entry["patient"] / "pair.json").is_file()
    assert manifest["simulation"]["i0_photons_per_bin"] > 0


def test_pairs_read_back_aligned_in_one_study(cohort: Path) -> None:
    full = read_volume(cohort / "DEMO001" / "full_dose")
    low = read_volume(cohort / "DEMO001" / "quarter_dose")
    assert full.shape == low.shape == (3, 64, 64)
    assert np.allclose(full.origin_mm, low.origin_mm) and full.spacing_mm == low.spacing_mm
    assert full.meta["StudyInstanceUID"] == low.meta["StudyInstanceUID"]
    assert full.meta["FrameOfReferenceUID"] == low.meta["FrameOfReferenceUID"]
    assert full.meta["SeriesInstanceUID"] != low.meta["SeriesInstanceUID"]
    assert full.padding_mask is not None and full.padding_mask[:, 0, 0].all()
    body = (full.hu > -200) & (low.hu > -200) & ~full.padding_mask
    diff = low.hu[body] - full.hu[body]
    assert abs(diff.mean()) < 5.0 and diff.std() > 5.0  # same anatomy, more noise


def test_cohort_is_deterministic(cohort: Path, tmp_path: Path) -> None:
    again = make_demo_cohort(tmp_path / "again", n_patients=1, n_slices=3, size=64, seed=7)
    a = pydicom.dcmread(cohort / "DEMO001" / "quarter_dose" / "IM00002.dcm")
    b = pydicom.dcmread(again.root / "DEMO001" / "quarter_dose" / "IM00002.dcm")
    assert a.SOPInstanceUID == b.SOPInstanceUID
    assert np.array_equal(a.pixel_array, b.pixel_array)


def test_cohort_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("user data")
    with pytest.raises(SimulationError, match="not empty"):
        make_demo_cohort(tmp_path, n_patients=1, n_slices=1, size=32)


def test_low_dose_dirnames() -> None:
    assert low_dose_dirname(0.25) == "quarter_dose"
    assert low_dose_dirname(0.5) == "half_dose"
    assert low_dose_dirname(0.05) == "dose_5pct"


def test_demo_data_cli(run_cli, tmp_path: Path) -> None:
    res = run_cli("demo-data", tmp_path / "d", "--patients", "1", "--slices", "2", "--size", "48")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "d" / "DEMO001" / "quarter_dose" / "IM00002.dcm").is_file()


def test_simulate_cli_writes_a_derived_low_dose_series(run_cli, cohort: Path, tmp_path: Path):
    src = cohort / "DEMO002" / "full_dose"
    out = tmp_path / "low"
    res = run_cli("simulate", "--dose", "0.25", "--seed", "1", src, out)
    assert res.exit_code == 0, res.stderr
    side = json.loads((out / "simulation.json").read_text())
    assert side["dose"] == 0.25 and side["i0_photons_per_bin"] > 0
    full, low = read_volume(src), read_volume(out)
    assert low.meta["StudyInstanceUID"] == full.meta["StudyInstanceUID"]
    assert low.meta["SeriesInstanceUID"] != full.meta["SeriesInstanceUID"]
    assert np.allclose(low.origin_mm, full.origin_mm) and low.spacing_mm == full.spacing_mm
    ds = pydicom.dcmread(sorted(out.glob("IM*.dcm"))[0])
    assert "dose fraction 0.25" in ds.DerivationDescription
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    body = (full.hu > -200) & ~full.padding_mask
    assert (low.hu - full.hu)[body].std() > 3.0
    # same seed -> same UIDs; the output folder must be new and empty
    assert run_cli("simulate", "--dose", "0.25", src, out).exit_code == 2


@pytest.mark.parametrize("dose", ["0", "1", "2", "-0.5"])
def test_simulate_cli_refuses_absurd_dose(run_cli, cohort: Path, tmp_path: Path, dose: str):
    res = run_cli("simulate", "--dose", dose, cohort / "DEMO001" / "full_dose", tmp_path / "o")
    assert res.exit_code == 2
    assert "dose" in res.stderr


def test_simulate_cli_refuses_non_ct(run_cli, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    mr = get_testdata_file("MR_small.dcm", download=False)
    res = run_cli("simulate", mr, tmp_path / "o")
    assert res.exit_code == 3


def test_simulate_cli_refuses_cropped_fov(run_cli, tmp_path: Path) -> None:
    hu = np.full((2, 48, 48), 40.0, dtype=np.float32)  # body fills the image: cropped
    hu[:, 20:26, 20:26] = -1000.0  # some air inside (e.g. bowel): a plausible CT series
    write_new_series(
        hu,
        (2.0, 2.0, 2.0),
        (0, 0, 0),
        np.eye(3),
        tmp_path / "in",
        patient_id="C1",
        patient_name="Cropped^Case",
        series_description="cropped",
    )
    res = run_cli("simulate", tmp_path / "in", tmp_path / "o")
    assert res.exit_code == 3
    assert "cropped field of view" in res.stderr
    res = run_cli("simulate", "--allow-cropped", tmp_path / "in", tmp_path / "o2")
    assert res.exit_code == 0


def _volume(spacing=(2.0, 1.0, 1.0), modality="CT", shape=(1, 32, 32)):
    from pipeline.io.volume import CTVolume

    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[:, 8:24, 8:24] = 40.0
    return CTVolume(hu, spacing, (0.0, 0.0, 0.0), np.eye(3), meta={"Modality": modality})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modality": "MR"}, "not CT"),
        ({"spacing": (2.0, 0.5, 0.7)}, "not square"),
        ({"spacing": (2.0, float("nan"), 1.0)}, "pixel spacing"),
        ({"shape": (1, 8, 8)}, "too small"),
    ],
)
def test_simulation_input_checks(kwargs: dict, message: str) -> None:
    from pipeline.simulate.from_volume import check_input

    with pytest.raises(SimulationError, match=message):
        check_input(_volume(**kwargs))
    assert check_input(_volume()) == []
