"""Red-team corpus through ``ldct denoise``: each generated case has one exact outcome.

Lost slices (edge or middle, unreadable / truncated / missing geometry), series of which every
file is skipped, implausible pixels (BitsAllocated 8 over 16-bit data, absurd rescale, rescale
missing in some slices, two's complement declared unsigned) and duplicate SOP instances are
either refused with a named reason or denoised with the source HU (identity model).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from infer_helpers import compress_rle, identity_checkpoint, write_series

from pipeline.io import header as header_module
from pipeline.io.read import read_volume

SET = ("--set", "read_workers=1")
N = 6


def _retag(path: Path, **tags: Any) -> None:
    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path)


def _sorted(paths: list[Path]) -> list[Path]:
    """Files in slice order (z of ImagePositionPatient)."""
    return sorted(paths, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))


def _unreadable(paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make files unreadable like chmod 000 (root reads everything: refuse in open())."""
    if os.geteuid() != 0:
        for p in paths:
            p.chmod(0)
        return
    locked = {str(p) for p in paths}

    def fake_open(file: Any, *a: Any, **k: Any) -> Any:
        if str(file) in locked:
            raise PermissionError(13, "Permission denied", str(file))
        return open(file, *a, **k)

    monkeypatch.setattr(header_module, "open", fake_open, raising=False)


def _signed_as_unsigned(path: Path) -> None:
    """Store HU directly as two's complement (intercept 0) but declare PixelRepresentation 0."""
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.int32) + int(ds.RescaleIntercept)
    ds.PixelData = hu.astype("<i2").tobytes()
    ds.RescaleIntercept = 0
    ds.PixelRepresentation = 0
    ds.save_as(path)


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Path]]:
    root = tmp_path / "in"
    cases: dict[str, list[Path]] = {}
    names = [
        "good", "first_unreadable", "last_truncated", "last_no_ipp", "middle_truncated",
        "all_unreadable", "all_truncated", "ba8_over_16", "slope_1e30", "intercept_1e6",
        "rescale_missing_3_of_6", "signed_as_unsigned", "conflicting_duplicate",
        "identical_duplicate", "rle_bomb_8192",
    ]  # fmt: skip
    for i, name in enumerate(names):
        paths = write_series(root / name, n_slices=N, seed=i, description=name.upper())
        cases[name] = _sorted(paths)
    c = cases
    _unreadable([c["first_unreadable"][0]], monkeypatch)
    for p in (c["last_truncated"][-1], c["middle_truncated"][2]):
        p.write_bytes(p.read_bytes()[:-1000])
    _retag(c["last_no_ipp"][-1], ImagePositionPatient=None)
    for p in c["all_truncated"]:
        p.write_bytes(p.read_bytes()[:-1000])
    for p in c["ba8_over_16"]:
        _retag(p, BitsAllocated=8, BitsStored=8, HighBit=7)
    for p in c["slope_1e30"]:
        _retag(p, RescaleSlope="1e30")
    for p in c["intercept_1e6"]:
        _retag(p, RescaleIntercept="1000000")
    for p in c["rescale_missing_3_of_6"][::2]:
        _retag(p, RescaleSlope=None, RescaleIntercept=None, RescaleType=None)
    for p in c["signed_as_unsigned"]:
        _signed_as_unsigned(p)
    # a different slice (other position) claiming the SOPInstanceUID of slice 0
    dup = pydicom.dcmread(c["conflicting_duplicate"][3])
    dup.SOPInstanceUID = pydicom.dcmread(c["conflicting_duplicate"][0]).SOPInstanceUID
    dup.file_meta.MediaStorageSOPInstanceUID = dup.SOPInstanceUID
    dup.save_as(c["conflicting_duplicate"][3])
    compress_rle(c["rle_bomb_8192"])  # RLE files claiming 8192 x 8192 (128 Mpixel/slice)
    for p in c["rle_bomb_8192"]:
        _retag(p, Rows=8192, Columns=8192)
    copy = root / "identical_duplicate" / "copy_of_first.dcm"
    shutil.copyfile(c["identical_duplicate"][0], copy)
    _unreadable([c["first_unreadable"][0], *c["all_unreadable"]], monkeypatch)
    return cases


def _rows(out: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    by_folder = {Path(r["input_path"]).name: r for r in rows}
    return by_folder


EXPECTED_FAIL = {
    "first_unreadable": "skipped at scan (cannot read file: permission denied)",
    "last_truncated": "skipped at scan (truncated file: pixel data needs",
    "middle_truncated": "skipped at scan (truncated file: pixel data needs",
    "last_no_ipp": "skipped at scan (missing required tag ImagePositionPatient)",
    "all_unreadable": "scan: every file of this series was skipped (6 file(s): ",
    "all_truncated": "scan: every file of this series was skipped (6 file(s): ",
    "ba8_over_16": "pixel data length 2048 bytes does not match Rows x Columns x frames x "
    "BitsAllocated/8 = 1024 (2 x the declared size)",
    "slope_1e30": "implausible pixel values: HU up to",
    "intercept_1e6": "implausible pixel values: HU up to",
    "rescale_missing_3_of_6": "rescale inconsistent across the series: 3 of 6 slices have no "
    "RescaleSlope/RescaleIntercept",
    "signed_as_unsigned": "two's complement (signed) data declared unsigned?",
    "conflicting_duplicate": "conflicting duplicate SOPInstanceUID",
    "rle_bomb_8192": "implausible matrix for CT: Rows x Columns = 8192 x 8192 (limit 4096 x 4096",
}


def test_corpus_outcomes(corpus: dict[str, list[Path]], tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "out"
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", ckpt, *SET)
    assert res.exit_code == 1, res.stdout + res.stderr  # PARTIAL_FAILURE
    rows = _rows(out)
    assert set(rows) == set(corpus)  # nothing vanished: every series has a row
    for name, expected in EXPECTED_FAIL.items():
        assert rows[name]["status"] == "failed", (name, rows[name])
        assert expected in rows[name]["reason"], (name, rows[name]["reason"])
    assert "beyond the physical range of CT" in rows["slope_1e30"]["reason"]
    assert "with slope 1e+30 / intercept -1024" in rows["slope_1e30"]["reason"]
    assert "with slope 1 / intercept 1e+06" in rows["intercept_1e6"]["reason"]
    assert "HU up to 6" in rows["signed_as_unsigned"]["reason"]  # ~64536: -1000 read unsigned
    # the named file is the lost one
    assert corpus["first_unreadable"][0].name in rows["first_unreadable"]["reason"]
    assert corpus["last_no_ipp"][-1].name in rows["last_no_ipp"]["reason"]
    for name in ("good", "identical_duplicate"):
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["n_slices"] == N and rows[name]["missing"] == ""
        src = read_volume(corpus[name][0].parent / corpus[name][1].name)  # one slice suffices
        der = read_volume(rows[name]["output_path"])
        assert der.shape == (N, 32, 32)
        k = [s.position_mm for s in der.slices].index(src.slices[0].position_mm)
        np.testing.assert_array_equal(der.hu[k], src.hu[0])  # identity model: same HU
    assert f"FAILED {corpus['all_unreadable'][0].parent}" in res.stdout


def test_dry_run_names_incomplete_and_lost(
    corpus: dict[str, list[Path]], tmp_path: Path, run_cli: Callable
) -> None:
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    res = run_cli("denoise", tmp_path / "in", "--out", tmp_path / "out", "--model", ckpt,
                  "--dry-run")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    lost = corpus["last_no_ipp"][-1].name
    assert f"INCOMPLETE: 1 file(s) of this series not usable, e.g. {lost}: missing required" in out
    assert "(REFUSED: conflicting duplicate SOPInstanceUID" in out
    assert "every file of this series was skipped (6 file(s)" in out
    assert not (tmp_path / "out").exists()


def test_allow_incomplete_names_missing_slices(
    corpus: dict[str, list[Path]], tmp_path: Path, run_cli: Callable
) -> None:
    out = tmp_path / "out"
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    res = run_cli(
        "denoise", tmp_path / "in", "--out", out, "--model", ckpt, *SET,
        "--set", "allow_incomplete=true",
    )  # fmt: skip
    assert res.exit_code == 1  # the refused (implausible, all-skipped) series still fail
    rows = _rows(out)
    for name, lost in (
        ("first_unreadable", corpus["first_unreadable"][0]),
        ("last_truncated", corpus["last_truncated"][-1]),
        ("middle_truncated", corpus["middle_truncated"][2]),
        ("last_no_ipp", corpus["last_no_ipp"][-1]),
    ):
        row = rows[name]
        assert row["status"] == "ok", row
        assert row["missing"].startswith(f"{lost.name} skipped at scan ("), row["missing"]
        der = read_volume(row["output_path"])
        assert der.shape[0] == N - 1
    for name in ("slope_1e30", "all_unreadable", "ba8_over_16", "conflicting_duplicate"):
        assert rows[name]["status"] == "failed"


def test_only_lost_series_exit_3(tmp_path: Path, run_cli: Callable) -> None:
    paths = write_series(tmp_path / "in" / "s", n_slices=3)
    for p in paths:
        p.write_bytes(p.read_bytes()[:-1000])
    out = tmp_path / "out"
    res = run_cli(
        "denoise", tmp_path / "in", "--out", out, "--model", identity_checkpoint(tmp_path / "i.pt"),
        *SET,
    )  # fmt: skip
    assert res.exit_code == 3, res.stdout + res.stderr  # INPUT: nothing readable
    (row,) = json.loads((out / "manifest.json").read_text())["rows"]
    assert row["status"] == "failed" and row["reason"].startswith("scan: every file")
    assert row["source_series_uid"]  # the UIDs were readable from the cut files


def test_any_bytes_in_names_reach_the_manifest_escaped(tmp_path: Path, run_cli: Callable) -> None:
    """Folder and file names with invalid UTF-8 and a newline: published, manifest written."""
    import csv

    weird = b"p\xff\xfe\nname\x1b".decode("utf-8", "surrogateescape")
    paths = write_series(tmp_path / "in" / weird, n_slices=3)
    paths[0].rename(paths[0].with_name(b"IM\xe9\n1.dcm".decode("utf-8", "surrogateescape")))
    out = tmp_path / "out"
    ckpt = identity_checkpoint(tmp_path / "id.pt")
    res = run_cli("denoise", tmp_path / "in", "--out", out, "--model", ckpt, *SET)
    assert res.exit_code == 0, res.stdout + res.stderr
    with open(out / "manifest.csv", encoding="utf-8", newline="") as fp:
        (row,) = list(csv.DictReader(fp))
    assert row["status"] == "ok"
    assert row["input_path"].endswith("/p\\xff\\xfe\\nname\\x1b")
    (jrow,) = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["rows"]
    assert jrow["input_path"] == row["input_path"]
    assert read_volume(jrow["output_path"]).shape == (3, 32, 32)
