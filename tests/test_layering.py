"""segopt_core is a pure library: no Prefect, no MLflow, and no import cycles between its parts."""

from __future__ import annotations

import ast
import itertools
import pkgutil
import subprocess
import sys
from pathlib import Path

import segopt_core


def test_core_imports_no_orchestration():
    modules = [m.name for m in pkgutil.walk_packages(segopt_core.__path__, "segopt_core.")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('prefect', 'mlflow'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"segopt_core imported orchestration modules: {result.stdout}{result.stderr}"
    )


def test_tracking_imports_no_prefect_and_the_tasks_no_mlflow():
    """MLflow code lives in segopt_tracking (no Prefect there); tasks/ and flows/ never import mlflow."""
    code = (
        "import importlib, pkgutil, sys, segopt_tracking\n"
        "for m in pkgutil.walk_packages(segopt_tracking.__path__, 'segopt_tracking.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] == 'prefect')\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"segopt_tracking imported prefect: {result.stdout}{result.stderr}"
    root = Path(segopt_core.__file__).resolve().parents[1]
    for path in sorted([*root.glob("tasks/*.py"), *root.glob("flows/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            assert not [n for n in names if n.split(".")[0] == "mlflow"], f"{path} imports mlflow"


# Import edges that still close a cycle, each with the reason it is tolerated. Keep this empty.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def _part(module: str) -> str | None:
    """The core part a module belongs to: its subpackage, or the top-level module (variants, atomic, ...)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "segopt_core" and len(parts) > 1 else None


def import_graph() -> dict[str, dict[str, list[str]]]:
    """part -> {imported part: [files importing it]}, from every import statement (lazy ones included)."""
    root = Path(segopt_core.__file__).parent
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        source = _part(".".join(rel.with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in filter(None, map(_part, targets)):
                if target != source and (rel.as_posix(), target) not in KNOWN_CYCLE_EDGES:
                    graph.setdefault(source, {}).setdefault(target, []).append(rel.as_posix())
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One import cycle between parts (as a path a -> b -> ... -> a), or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == "open":  # on the current path: a cycle
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_core_parts_import_each_other_without_cycles():
    graph = import_graph()
    cycle = find_cycle(graph)
    where = [f"{a} -> {b}: {', '.join(graph[a][b])}" for a, b in itertools.pairwise(cycle or [])]
    assert cycle is None, "import cycle between segopt_core parts:\n" + "\n".join(where)


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b": ["a.py"]}, "b": {"c": ["b.py"]}, "c": {"a": ["c.py"]}}) == [
        "a",
        "b",
        "c",
        "a",
    ]
    assert find_cycle({"a": {"b": ["a.py"]}, "b": {}}) is None


def test_the_docs_show_the_row_schemas_as_the_code_defines_them():
    """docs/benchmark.md and docs/orchestration.md hold the tables `schema_markdown()` makes, verbatim."""
    from segopt_core.benchmark.schema import schema_markdown as benchmark_columns
    from segopt_core.reports.schema import schema_markdown as result_columns

    docs = Path(__file__).resolve().parents[1] / "docs"
    assert benchmark_columns() in (docs / "benchmark.md").read_text(encoding="utf-8")
    assert result_columns() in (docs / "orchestration.md").read_text(encoding="utf-8")
