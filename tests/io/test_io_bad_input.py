"""Bad input never crashes: each problem file gets a specific reason that names it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_dicom_factory import make_series
from pydicom.uid import RLELossless

from pipeline.io import decode
from pipeline.io.decode import DecodeJob, decode_jobs
from pipeline.io.discover import scan
from pipeline.io.read import read_series, read_volume


def _only_skip(path: Path) -> str:
    result = scan([path])
    assert not result.series
    (skip,) = result.skipped
    assert skip.path == path
    return skip.reason


def test_truncated_file(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "s", n_slices=1)
    data = spec.paths[0].read_bytes()
    bad = tmp_path / "truncated.dcm"
    bad.write_bytes(data[: len(data) - 100])
    reason = _only_skip(bad)
    assert reason.startswith(("truncated file", "pixel data too short")), reason


def test_truncated_in_header(tmp_path: Path) -> None:
    spec = make_series(tmp_path / "s", n_slices=1)
    bad = tmp_path / "cut_header.dcm"
    bad.write_bytes(spec.paths[0].read_bytes()[:300])
    reason = _only_skip(bad)
    assert reason.startswith("incomplete DICOM header: no Modality and no SOPClassUID"), reason


def test_non_dicom_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "a.dcm").write_bytes(os.urandom(4096))
    (tmp_path / "b.dcm").write_bytes(b"")
    result = scan([tmp_path])
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons["a.dcm"].startswith("not a DICOM file")
    assert reasons["b.dcm"] == "empty file (0 bytes)"


def _rewrite(path: Path, **tags: object) -> Path:
    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path)
    return path


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"BitsStored": 20}, "contradicting tags: BitsStored 20 with BitsAllocated 16"),
        ({"PixelRepresentation": 2}, "contradicting tags: PixelRepresentation 2"),
        (
            {"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]},
            "contradicting tags: ImageOrientationPatient",
        ),
        ({"PixelSpacing": [0, 0.5]}, "contradicting tags: PixelSpacing"),
        ({"Rows": 64}, "pixel data too short"),
        ({"ImagePositionPatient": None}, "missing required tag ImagePositionPatient"),
        ({"PixelData": None}, "no pixel data"),
        ({"SamplesPerPixel": 3}, "not a greyscale image"),
        ({"Rows": 65535, "Columns": 65535}, "implausible matrix for CT: Rows x Columns"),
        ({"Rows": 4096, "Columns": 4096, "NumberOfFrames": 80}, "implausible image size"),
        ({"NumberOfFrames": 0}, "contradicting tags: NumberOfFrames 0"),
    ],
)
def test_contradicting_or_missing_tags(tmp_path: Path, tags: dict, expected: str) -> None:
    spec = make_series(tmp_path, n_slices=1)
    reason = _only_skip(_rewrite(spec.paths[0], **tags))
    assert reason.startswith(expected), reason


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_series(tmp_path, n_slices=2)
    locked = spec.paths[0]
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads everything: make open() refuse this one file like the kernel would
        real_open = open

        def fake_open(file, *a, **k):  # type: ignore[no-untyped-def]
            if Path(file) == locked:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *a, **k)

        monkeypatch.setattr("builtins.open", fake_open)
    try:
        result = scan([tmp_path])
    finally:
        locked.chmod(0o644)
    assert result.series[0].n_slices == 1
    (skip,) = result.skipped
    assert skip.path == locked and skip.reason == "cannot read file: permission denied"


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = scan([tmp_path / "empty", tmp_path / "missing"])
    assert [(s.path.name, s.reason) for s in result.skipped] == [
        ("empty", "empty folder (no files found)"),
        ("missing", "no such file or directory"),
    ]


def test_corrupt_compressed_slice_is_dropped_with_reason(tmp_path: Path) -> None:
    spec = make_series(tmp_path, n_slices=6, transfer_syntax=RLELossless, shuffle=False)
    ds = pydicom.dcmread(spec.paths[1])
    frag = bytearray(ds.PixelData)
    frag[-200:] = b"\x00" * 200  # keep the encapsulation, break the RLE segments
    frag[64:80] = b"\xff" * 16
    ds.PixelData = bytes(frag)
    ds.save_as(spec.paths[1])
    vol = read_volume(tmp_path)
    (skipped,) = vol.meta["skipped_files"]
    assert skipped["path"] == str(spec.paths[1])
    assert skipped["reason"].startswith("cannot decode pixel data (RLE Lossless)")
    assert vol.shape[0] == 5
    assert any("missing slices: 1 slice(s)" in w for w in vol.warnings)
    assert any(spec.paths[1].name in w for w in vol.warnings)


def test_undecodable_everything_is_a_clear_error(tmp_path: Path) -> None:
    spec = make_series(tmp_path, n_slices=1, transfer_syntax=RLELossless)
    ds = pydicom.dcmread(spec.paths[0])
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 10])
    ds.save_as(spec.paths[0])
    from pipeline.errors import DicomError

    with pytest.raises(DicomError, match=r"no slice of series .* could be decoded"):
        read_volume(tmp_path)


# ------------------------------------------------------------- decoder isolation (crash/hang)


def _job(path: Path) -> DecodeJob:
    return DecodeJob(path, 8, 8, 1, 16, 16, 1, RLELossless)


def _crashing_decode(job: DecodeJob) -> np.ndarray:
    if job.path.name == "crash":
        os._exit(11)  # what a segfaulting C decoder looks like from outside
    if job.path.name == "hang":
        time.sleep(60)
    return np.zeros((1, 8, 8), np.int16)


@pytest.mark.parametrize("bad", ["crash", "hang"])
def test_decoder_crash_or_hang_costs_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    decode._shutdown_pool(kill=True)  # workers must fork after the patch
    monkeypatch.setattr(decode, "decode_one", _crashing_decode)
    monkeypatch.setattr(decode, "DECODE_TIMEOUT_S", 1.5)
    jobs = [_job(tmp_path / n) for n in ("a", bad, "b")]
    try:
        results = decode_jobs(jobs, workers=2)
    finally:
        decode._shutdown_pool(kill=True)
    assert isinstance(results[0], np.ndarray) and isinstance(results[2], np.ndarray)
    assert isinstance(results[1], str)
    assert results[1].startswith("decoder crashed" if bad == "crash" else "decoder hung")


def _greedy_decode(job: DecodeJob) -> np.ndarray:
    if job.path.name == "bomb":
        np.empty(1 << 30, np.uint8)  # 1 GiB of address space: over a 256 MB budget
    return np.zeros((1, 8, 8), np.int16)


def test_decoder_memory_budget_costs_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decode._shutdown_pool(kill=True)  # workers must fork after the patch
    monkeypatch.setattr(decode, "decode_one", _greedy_decode)
    monkeypatch.setattr(decode, "DECODE_MEMORY_MB", 256.0)
    jobs = [_job(tmp_path / n) for n in ("a", "bomb", "b")]
    try:
        results = decode_jobs(jobs, workers=2)
    finally:
        decode._shutdown_pool(kill=True)
    assert isinstance(results[0], np.ndarray) and isinstance(results[2], np.ndarray)
    assert isinstance(results[1], str) and "MemoryError" in results[1], results[1]
    assert results[1].endswith("(over the decode memory budget of 256 MB for this file)")


def test_decode_time_budget_scales_with_pixels() -> None:
    small = DecodeJob(Path("a"), 512, 512, 1, 16, 16, 1, RLELossless)
    big = DecodeJob(Path("b"), 512, 512, 500, 16, 16, 1, RLELossless)
    assert decode.time_budget_s(small) == pytest.approx(
        decode.DECODE_TIMEOUT_S + decode.DECODE_S_PER_MPIXEL * 0.262144
    )
    assert decode.time_budget_s(big) - decode.DECODE_TIMEOUT_S == pytest.approx(
        500 * (decode.time_budget_s(small) - decode.DECODE_TIMEOUT_S)
    )
    assert decode.memory_budget_bytes(big) == 4 * 512 * 512 * 500 * 2


def test_series_survives_decoder_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_series(tmp_path, n_slices=3, transfer_syntax=RLELossless, shuffle=False)
    victim = spec.paths[2]
    real = decode.decode_one

    def flaky(job: DecodeJob) -> np.ndarray:
        if job.path == victim:
            os._exit(11)
        return real(job)

    decode._shutdown_pool(kill=True)
    monkeypatch.setattr(decode, "decode_one", flaky)
    try:
        vol = read_series(scan([tmp_path]).series[0], workers=2)
    finally:
        decode._shutdown_pool(kill=True)
    assert vol.shape[0] == 2
    assert vol.meta["skipped_files"][0]["path"] == str(victim)
    assert "decoder crashed" in vol.meta["skipped_files"][0]["reason"]
