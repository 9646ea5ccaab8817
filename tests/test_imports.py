"""The package's import graph: no cycles, and the view layer on top.

Every ``import`` statement in ``bayesrca/`` counts, including those inside functions (a lazy
import still makes two modules depend on each other). Nodes are modules; a package's
``__init__`` re-exports are left out (they sit above everything by construction).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesrca"

#: Modules nothing in the library may import (they read results and fitted models only).
VIEW = {"bayesrca.plotting", "bayesrca.report", "bayesrca.cli", "bayesrca.__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(imported: str, known: dict[str, Path]) -> str | None:
    """The module of ``known`` an import refers to (``pkg.mod.name`` -> ``pkg.mod``)."""
    while imported:
        if imported in known:
            return imported
        imported = imported.rpartition(".")[0]
    return None


def import_graph() -> nx.DiGraph:
    """Edges ``a -> b`` for every module ``a`` of bayesrca that imports module ``b`` of bayesrca."""
    known = _modules()
    packages = {name for name, path in known.items() if path.name == "__init__.py"}
    graph = nx.DiGraph()
    graph.add_nodes_from(n for n in known if n not in packages)
    for name, path in known.items():
        if name in packages:
            continue
        base = name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = name if path.name == "__init__.py" else base
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    module = f"{anchor}.{node.module}" if node.module else anchor
                else:
                    module = node.module or ""
                # ``from pkg import mod`` imports a module; ``from mod import name`` the module
                targets = [f"{module}.{alias.name}" for alias in node.names]
            for target in targets:
                hit = _resolve(target, known)
                if hit is None:
                    continue
                if hit in packages:  # through a package's re-exports: depend on what it re-exports
                    hit = _resolve(target, {k: v for k, v in known.items() if k not in packages}) or hit
                if hit != name and hit not in packages:
                    graph.add_edge(name, hit)
    return graph


def test_graph_sees_the_modules():
    graph = import_graph()
    assert "bayesrca.scm" in graph and "bayesrca.counterfactual.handlers" in graph
    assert graph.number_of_edges() > 20


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


def test_view_layer_is_imported_by_nothing_but_the_view():
    graph = import_graph()
    offenders = [(a, b) for a, b in graph.edges if b in VIEW and a not in VIEW]
    # results' .plot() conveniences import plotting lazily, in one direction (pandas' pattern)
    offenders = [(a, b) for a, b in offenders if not (a.startswith("bayesrca.results") and b == "bayesrca.plotting")]
    assert not offenders, f"modules below the view layer import it: {offenders}"


def test_statistics_never_import_plotting_at_import_time():
    tree_imports = {
        name: [n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for name, path in _modules().items()
    }
    for name, nodes in tree_imports.items():
        if name.startswith("bayesrca.plotting") or name in VIEW:
            continue
        for node in nodes:
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any("matplotlib" in n for n in names), f"{name} imports matplotlib at import time"


@pytest.mark.parametrize("name", sorted(n for n in _modules() if n != "bayesrca.__main__"))
def test_every_module_imports_alone(name):
    importlib.import_module(name)
