"""One shape-check helper, used at module boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_shape(name: str, array: Any, expected: Sequence[int | str | None]) -> None:
    """Check ``array.shape`` against ``expected`` (ints fixed, str/None free dims).

    ``check_shape("x", x, ("B", 1, "H", "W"))`` raises if ``x`` is not 4-D with one channel.
    """
    shape = tuple(array.shape)
    if len(shape) != len(expected) or any(
        isinstance(e, int) and e != s for e, s in zip(expected, shape, strict=False)
    ):
        want = "(" + ", ".join(str(e) for e in expected) + ")"
        raise ValueError(f"{name}: expected shape {want}, found {shape}")
