"""User errors vs bugs: a contract violation inside the library (an array of the wrong shape, a
value no caller may pass) is a ValueError/TypeError/RuntimeError and reaches the user as a
traceback; what the user can fix is an LdctError: one line and a documented exit code."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import DicomError, ExitCode, LdctError


def _fn(module: str, name: str) -> Callable[..., object]:
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _ctvolume_2d() -> object:
    from pipeline.io.volume import CTVolume

    return CTVolume(np.zeros((4, 4), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))


def _with_hu_wrong_shape() -> object:
    from pipeline.io.volume import CTVolume

    vol = CTVolume(np.zeros((2, 4, 4), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    return vol.with_hu(np.zeros((1, 4, 4), np.float32))


def _metric_mismatch() -> object:
    from pipeline.evaluate.metrics import psnr

    return psnr(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 7), 1.0)


def _write_new_2d() -> object:
    from pipeline.io.write_new import write_new_series

    return write_new_series(
        np.zeros((8, 8), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3),
        Path("/nonexistent/never-written"), patient_id="P", patient_name="P",
        series_description="x",
    )  # fmt: skip


def _projector_wrong_grid() -> object:
    from pipeline.simulate.geometry import ParallelGeometry
    from pipeline.simulate.projector import forward_project

    geom = ParallelGeometry.for_image(16, 1.0, n_views=8)
    return forward_project(torch.zeros(1, 12, 12), geom)


def _manifest_status() -> object:
    from pipeline.records import ManifestRow

    return ManifestRow("k", "/in", "maybe")


def _precision_dtype() -> object:
    from pipeline.models.precision import precision_dtype

    return precision_dtype(torch.float16)


def _simulate_4d() -> object:
    from pipeline.simulate.lowdose import simulate_pair

    return simulate_pair(np.zeros((1, 1, 16, 16), np.float32), 1.0, 0.25)


CONTRACTS: dict[str, tuple[Callable[[], object], type[Exception], str]] = {
    "check_shape": (
        lambda: _fn("pipeline.utils.shapes", "check_shape")(
            "x", np.zeros((2, 2)), ("B", 1, "H", "W")
        ),
        ValueError, r"x: expected shape \(B, 1, H, W\), found \(2, 2\)",
    ),
    "CTVolume 2-D": (_ctvolume_2d, ValueError, "must be 3-D"),
    "CTVolume.with_hu": (_with_hu_wrong_shape, ValueError, "with_hu: shape"),
    "metric shapes": (_metric_mismatch, ValueError, "shapes must match"),
    "body_mask 4-D": (
        lambda: _fn("pipeline.evaluate.body_mask", "body_mask")(
            np.zeros((1, 1, 4, 4))
        ),
        ValueError, "expected",
    ),
    "nps_2d": (
        lambda: _fn("pipeline.evaluate.noise", "nps_2d")(
            np.zeros((4, 4)), (1.0, 1.0)
        ),
        ValueError, "patches",
    ),
    "detrend": (
        lambda: _fn("pipeline.evaluate.nps", "detrend")(np.zeros((4, 4))),
        ValueError, "patches",
    ),
    "residual_power": (
        lambda: _fn("pipeline.evaluate.artifacts", "residual_power")(
            np.zeros((2, 4, 4))
        ),
        ValueError, "2-D slice",
    ),
    "sobel ndim": (
        lambda: _fn("pipeline.models.sobel", "sobel_edges")(torch.zeros(5, 5)),
        ValueError, r"\(B, C, H, W\)",
    ),
    "write_new 2-D": (_write_new_2d, ValueError, r"\(Z, Y, X\)"),
    "projector grid": (_projector_wrong_grid, ValueError, "must have shape"),
    "manifest status": (_manifest_status, ValueError, "must be ok"),
    "precision dtype": (_precision_dtype, ValueError, "float32 or bfloat16"),
    "simulate 4-D": (_simulate_4d, ValueError, r"\(Z, Y, X\)"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_contract_violations_are_builtin_errors_not_user_errors(name: str) -> None:
    call, kind, message = CONTRACTS[name]
    with pytest.raises(kind, match=message) as info:
        call()
    assert not isinstance(info.value, LdctError)


def test_a_bug_reaches_the_cli_as_a_traceback_a_user_error_as_one_line(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.io.discover as discover

    def bug(*_a: object, **_k: object) -> None:
        raise ValueError("x: expected shape (B, 1, H, W), found (2, 2)")

    monkeypatch.setattr(discover, "scan", bug)
    with pytest.raises(ValueError, match="expected shape"):  # not swallowed: a traceback
        run_cli("inspect", tmp_path)

    def unusable(*_a: object, **_k: object) -> None:
        raise DicomError("not a DICOM file", path=tmp_path / "x.dcm")

    monkeypatch.setattr(discover, "scan", unusable)
    res = run_cli("inspect", tmp_path)
    assert res.exit_code == ExitCode.INPUT
    assert "x.dcm" in res.stderr and "not a DICOM file" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_damaged_manifest_part_is_a_user_error_naming_the_file(tmp_path: Path) -> None:
    """ManifestRow refuses a bad status with ValueError (a bug when code builds it); read from
    a file, the same problem is the user's: LdctError naming the part."""
    import json

    from pipeline.infer.manifest import PARTS_DIR, merge_parts

    part = tmp_path / PARTS_DIR / "part-0-of-1.json"
    part.parent.mkdir()
    part.write_text(json.dumps({"run": {}, "rows": [{"series_key": "k", "input_path": "/a",
                                                     "status": "maybe"}]}))  # fmt: skip
    with pytest.raises(LdctError, match="unreadable manifest part") as info:
        merge_parts(tmp_path)
    assert str(part) in str(info.value)
