"""The package's import graph: no cycle between its modules, and the layers import downwards only.

Read from the source with `ast` (imports inside functions included, since a lazy import still
ties two modules together), so the test sees what a reader of the code sees.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "annealbench"
# which sub-packages each layer may import (besides itself); `cli` joins the runner and the analysis
ALLOWED = {
    "common": set(),
    "optimizers": {"common"},
    "tasks": {"common"},
    "runner": {"common", "optimizers", "tasks"},
    "analysis": {"common"},
    "perf": {"common", "optimizers", "tasks", "runner", "analysis"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import submodule` depends on the submodule, not on the package
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                           else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


def test_no_import_cycle():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert cycles == []


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below(layer):
    wrong = sorted((a, b) for a, b in import_graph().edges
                   if a.split(".")[1:2] == [layer] and len(b.split(".")) > 1
                   and b.split(".")[1] not in ALLOWED[layer] | {layer}
                   and b != "annealbench")
    assert wrong == []


def test_the_graph_sees_imports():
    """A check that cannot fail is none: the reader finds known edges, lazy ones included."""
    graph = import_graph()
    assert graph.has_edge("annealbench.runner.run.execute", "annealbench.tasks.stacking")  # lazy
    assert graph.has_edge("annealbench.cli", "annealbench.analysis.cli")
    graph.add_edge("annealbench.common.errors", "annealbench.cli")
    assert any(len(c) > 1 for c in nx.strongly_connected_components(graph))
