"""The examples in docstrings run and print what they say (every module under pipeline/ that
has one: found by scanning, so a new example is tested without registering it)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "pipeline"


def _modules_with_examples() -> list[str]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PKG.parent).with_suffix("").parts
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


MODULES = _modules_with_examples()


def test_the_pure_functions_have_examples() -> None:
    assert {
        "pipeline.intensity",
        "pipeline.io.hu",
        "pipeline.io.dicom_encode",
        "pipeline.infer.tiling",
        "pipeline.simulate.geometry",
        "pipeline.utils.text",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name}: no example ran"
    assert result.failed == 0, f"{name}: {result.failed} example(s) failed (run with -s to see)"
