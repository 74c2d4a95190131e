"""No function outside ``pipeline/cli/`` is longer than 80 lines (signature, docstring and body).

A long function does several things; split it into named steps. The CLI commands are exempt:
their length is typer's option declarations, not logic.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "pipeline"
MAX_LINES = 80


def long_functions(root: Path = PKG, limit: int = MAX_LINES) -> list[str]:
    """``path:line name (n lines)`` of every function over ``limit`` lines under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if "cli" in path.relative_to(root).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = (node.end_lineno or node.lineno) - start + 1
                if n > limit:
                    rel = path.relative_to(root.parent)
                    found.append(f"{rel}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_over_80_lines_outside_cli() -> None:
    assert long_functions() == []


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n\ndef g():\n    return 1\n")
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "c.py").write_text(f"def h():\n{body}\n")
    assert long_functions(tmp_path) == [f"{tmp_path.name}/m.py:1 f (81 lines)"]
