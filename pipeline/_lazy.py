"""Lazy public faces of the stage packages (PEP 562 module ``__getattr__``).

Each stage ``__init__`` lists its public names by module; ``import pipeline.evaluate`` imports no
submodule (so ``ldct --help`` stays fast), and ``pipeline.evaluate.ssim`` imports
``pipeline.evaluate.metrics`` on first use. mypy sees the same names through the
``if TYPE_CHECKING:`` imports beside each list; ``tests/test_public_api.py`` keeps the three in
step and fails when a public name disappears.

>>> getattr_, dir_ = attach("pipeline.utils", {}, {"text": ("printable",)})
>>> getattr_("printable") is __import__("pipeline.utils.text").utils.text.printable
True
>>> "printable" in dir_()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def attach(
    package: str, namespace: dict[str, Any], exports: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` re-exporting ``exports`` lazily.

    ``exports`` maps a submodule name to the names it provides; ``"alias=name"`` publishes the
    submodule's ``name`` as ``alias``. A resolved name is cached in ``namespace`` (the package's
    ``globals()``), so each is looked up once.
    """
    where: dict[str, tuple[str, str]] = {}
    for module, names in exports.items():
        for entry in names:
            public, _, source = entry.partition("=")
            where[public] = (module, source or public)

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, source = where[name]
        value = getattr(importlib.import_module(f"{package}.{module}"), source)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
