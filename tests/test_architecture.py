"""Architecture checks: no import cycle anywhere in ``pipeline/``; the model registry keeps its
built-ins whatever is registered first."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "pipeline"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def import_graph() -> dict[str, set[str]]:
    """Module -> pipeline modules it imports (module level *and* inside functions; imports under
    ``if TYPE_CHECKING`` do not run and are left out)."""
    paths = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - node.level + 1]
                    base = ".".join([*pkg, *([node.module] if node.module else [])])
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}
        resolved = set()
        for t in targets:
            while t and t not in paths:
                t = t.rpartition(".")[0]
            if t and t != name:
                resolved.add(t)
        graph[name] = resolved
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS, colours)."""
    colour: dict[str, int] = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        colour[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if colour.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if colour.get(nxt) == 0:
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_in_pipeline() -> None:
    graph = import_graph()
    assert "pipeline.models.registry" in graph and len(graph) > 100
    assert "pipeline.data.layouts" in graph["pipeline.data.pairs"]  # edges are really seen
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_registering_a_custom_model_first_keeps_the_builtins() -> None:
    code = (
        "from torch import nn\n"
        "from pipeline.models.registry import ModelSpec, model_names, register_model\n"
        "register_model(ModelSpec('my-net', lambda: nn.Identity(), 'custom'))\n"
        "print(','.join(model_names()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = proc.stdout.strip().split(",")
    assert "my-net" in names and {"drle", "drl", "unet", "redcnn"} <= set(names)


def _reachable(graph: dict[str, set[str]], roots: list[str]) -> set[str]:
    seen, todo = set(roots), list(roots)
    while todo:
        for nxt in graph.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_inference_never_imports_training() -> None:
    """``ldct denoise`` (pipeline.infer and the CLI's denoise commands) reaches no module of
    pipeline.train, at module level or inside a function (the bundled model lives in models)."""
    graph = import_graph()
    roots = [m for m in graph if m == "pipeline.infer" or m.startswith("pipeline.infer.")]
    roots.append("pipeline.cli.commands.denoise")
    assert "pipeline.infer.loader" in roots and "pipeline.models.bundled" in _reachable(
        graph, roots
    )
    reached = _reachable(graph, roots)
    training = sorted(
        m for m in reached if m == "pipeline.train" or m.startswith("pipeline.train.")
    )
    assert training == [], f"inference imports training: {training}"
    assert "pipeline.train.run" in _reachable(graph, ["pipeline.cli.commands.train"])  # seen


def test_no_sys_path_inserts_in_tests() -> None:
    """Tests import helpers through pytest's ``pythonpath`` (pyproject), never by editing
    sys.path themselves."""
    tests = Path(__file__).resolve().parent
    offenders = [
        str(p.relative_to(tests))
        for p in sorted(tests.rglob("*.py"))
        if p != Path(__file__).resolve()
        and any(
            f"sys.path.{verb}" in p.read_text(encoding="utf-8") for verb in ("insert", "append")
        )
    ]
    assert offenders == []
