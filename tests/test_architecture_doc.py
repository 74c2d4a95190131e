"""docs/architecture.md draws the imports between stages as the code has them.

The table between the ``stage-imports`` markers is rebuilt here from the import graph of
``tests/test_architecture.py`` (module level and function level); a new arrow between stages, or
one that disappeared, fails until the table is updated (the message prints the new table).
"""

from __future__ import annotations

from pathlib import Path

from test_architecture import import_graph

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
STAGES = ("io", "data", "simulate", "models", "losses", "train", "infer", "evaluate", "report",
          "pacs", "cli")  # fmt: skip
CORE = ("pipeline", "config", "errors", "intensity", "records", "utils")
#: helpers of the faces, not an architectural dependency
IGNORED = {"_lazy"}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pipeline"


def stage_table() -> str:
    """The markdown table: package | stages it imports | core modules it imports."""
    edges: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        for target in targets:
            a, b = _package(module), _package(target)
            if a != b and b not in IGNORED:
                edges.setdefault(a, set()).add(b)
    lines = ["| package | imports stages | imports core |", "|---|---|---|"]
    for pkg in ("config", "intensity", "records", "utils", *STAGES):
        deps = edges.get(pkg, set())
        stages = ", ".join(f"`{d}`" for d in STAGES if d in deps) or "—"
        core = ", ".join(f"`{d}`" for d in CORE if d in deps) or "—"
        lines.append(f"| `{pkg}` | {stages} | {core} |")
    return "\n".join(lines)


def _documented() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("<!-- stage-imports:start -->") + len("<!-- stage-imports:start -->")
    return text[start : text.index("<!-- stage-imports:end -->")].strip()


def test_architecture_doc_draws_the_stage_imports_of_the_code() -> None:
    table = stage_table()
    assert _documented() == table, f"docs/architecture.md is stale; the code says:\n{table}"


def test_core_imports_no_stage() -> None:
    rows = {line.split("|")[1].strip(" `"): line for line in stage_table().splitlines()[2:]}
    for core in ("config", "intensity", "records", "utils"):
        assert rows[core].split("|")[2].strip() == "—", rows[core]
