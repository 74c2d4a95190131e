"""Records between stages: the denoise manifest's integer tile fields (and the text of older
manifests) as evaluate reads them; the series folders evaluate records for the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.records import ManifestRow, TileFields, tile_fields_of


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"tile_size_px": 256, "tile_stride_px": 224, "tile_overlap_px": 32, "tiling": "x"},
         TileFields(256, 224, 32)),
        ({"tile_size_px": 0, "tile_stride_px": 0, "tile_overlap_px": 0}, TileFields.whole()),
        # a skipped/failed row of a new manifest: not inferred, so not known (text not read)
        ({"tile_size_px": None, "tiling": "whole slices"}, None),
        # older manifests: the text is all there is
        ({"tiling": "256x256 tiles stride=224"}, TileFields(256, 224, 32)),
        ({"tiling": "whole slices"}, TileFields.whole()),
        ({"tiling": "96x96 tiles"}, TileFields(96, None, None)),
        ({"tiling": "tile=256 stride=224"}, TileFields(None, 224, None)),
        ({"tiling": ""}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_tile_fields_from_new_and_old_manifest_rows(row, expected) -> None:
    assert tile_fields_of(row) == expected


def test_manifest_row_round_trips_its_tile_fields_through_json() -> None:
    fields = TileFields.tiles(128, 12)
    assert (fields.size_px, fields.stride_px, fields.overlap_px) == (128, 104, 24)
    row = ManifestRow("k", "/in", "ok", tiling=fields.text(), **fields.row_fields())
    back = json.loads(json.dumps(row.__dict__))
    assert tile_fields_of(back) == fields
    assert back["tiling"] == "128x128 tiles stride=104"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from pipeline.io.read import read_volume
    from pipeline.io.write import write_derived_series
    from pipeline.simulate.cohort import make_demo_cohort

    root = tmp_path_factory.mktemp("records")
    data = root / "data"
    make_demo_cohort(data, n_patients=1, n_slices=3, size=96, seed=11)
    den = root / "den"
    for pdir in sorted(p for p in data.iterdir() if p.is_dir()):
        low = read_volume(pdir / "quarter_dose")
        smooth = np.stack([ndi.gaussian_filter(s, 1.0) for s in low.hu])
        write_derived_series(
            low, smooth, den / pdir.name, series_description="smoothed",
            derivation_description="test", uid_key="records-test",
        )  # fmt: skip
    return {"data": data, "den": den, "root": root}


def _den_uid(den: Path) -> str:
    from pipeline.io.discover import scan

    (series,) = scan([den]).series
    return series.series_uid


def test_evaluate_reads_the_tile_fields_and_old_text_alike(tiny, tmp_path: Path) -> None:
    """The same tiling recorded as integers (new manifest) or as text only (older manifest)
    gives the evaluation the same tile stride; the integers are what it reads."""
    from pipeline.evaluate.runner import evaluate

    uid = _den_uid(tiny["den"])
    fields = TileFields.tiles(64, 8)
    rows = {
        "new": {"derived_series_uid": uid, **fields.row_fields(), "tiling": "unparsed text"},
        "old": {"derived_series_uid": uid, "tiling": "64x64 tiles stride=48"},
    }
    strides = {}
    for name, row in rows.items():
        den = tmp_path / name / "den"
        shutil.copytree(tiny["den"], den)
        (den / "manifest.json").write_text(json.dumps({"rows": [row]}), encoding="utf-8")
        res = evaluate(tiny["data"], tmp_path / name / "eval", full=tiny["data"], denoised=den)
        (patient,) = res.summary["patients"]
        strides[name] = patient["tile_stride_px"]
    assert strides == {"new": 48, "old": 48}


def test_summary_records_each_roles_series_folder(tiny, tmp_path: Path) -> None:
    from pipeline.evaluate.pairing import EvalItem, pair_inputs
    from pipeline.evaluate.runner import evaluate

    res = evaluate(tiny["data"], tmp_path / "eval", full=tiny["data"], denoised=tiny["den"])
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text(encoding="utf-8"))
    (info,) = summary["patients"]
    folders = {role: rec["folders"] for role, rec in info["series_folders"].items()}
    (pdir,) = [p for p in tiny["data"].iterdir() if p.is_dir()]
    assert folders == {
        "low": [str((pdir / "quarter_dose").resolve())],
        "full": [str((pdir / "full_dose").resolve())],
        "denoised": [str((tiny["den"] / pdir.name).resolve())],
    }
    assert info["series_folders"]["denoised"]["series_uid"] == _den_uid(tiny["den"])
    # the record finds the very series the pairing rule found
    (paired,) = pair_inputs(tiny["data"], tiny["data"], tiny["den"]).items
    again = EvalItem.from_record(info["patient"], info)
    for role, rec in paired.records().items():
        got = again.records()[role]
        assert (got.series_uid, got.part, got.n_slices) == (rec.series_uid, rec.part, rec.n_slices)
    assert again.full_same_frame == paired.full_same_frame
    assert res.summary["patients"][0]["series_folders"] == info["series_folders"]
