"""Robustness corpus: every file of pydicom's test folders is read or skipped with a reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from pipeline.errors import LdctError
from pipeline.io.discover import scan
from pipeline.io.read import read_series


def _corpus_dirs() -> list[Path]:
    dirs = [Path(get_testdata_file("CT_small.dcm", download=False)).parent]
    extra = get_testdata_file("693_UNCI.dcm", download=False)  # pydicom-data, when installed
    if extra:
        dirs.append(Path(extra).parent)
    return dirs


def _check_corpus(root: Path) -> dict[str, int]:
    t0 = time.perf_counter()
    result = scan([root])
    in_series = sum(len(r.files) for r in result.series)
    assert result.n_files == in_series + sum(1 for s in result.skipped if s.path.is_file())
    for s in result.skipped:
        assert s.reason and isinstance(s.reason, str)
    read_ok = read_err = dropped = 0
    for rec in result.series:
        try:
            vol = read_series(rec, workers=2)
        except LdctError as exc:  # a whole series refused: clear message, no traceback
            assert str(exc)
            read_err += 1
            continue
        read_ok += 1
        assert vol.hu.shape[0] + len(vol.meta["skipped_files"]) >= len(rec.files)
        for s in vol.meta["skipped_files"]:
            assert s["reason"]
            dropped += 1
    return {"files": result.n_files, "series": len(result.series), "read": read_ok,
            "errors": read_err, "dropped": dropped, "s": int(time.perf_counter() - t0)}  # fmt: skip


def test_pydicom_test_files_corpus() -> None:
    stats = _check_corpus(_corpus_dirs()[0])
    assert stats["files"] > 150
    # CT_small, 693_J2KI, J2K_pixelrep_mismatch and the two dicomdirtests CT series
    assert stats["series"] == stats["read"] == 5


def test_pydicom_data_corpus() -> None:
    dirs = _corpus_dirs()
    if len(dirs) < 2:
        pytest.skip("pydicom-data not installed")
    stats = _check_corpus(dirs[1])
    assert stats["files"] > 50 and stats["read"] >= 1
