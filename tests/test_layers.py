"""The layout shows the architecture: lower layers never import higher ones, and no module of the
project imports itself back through others (imports inside functions and under TYPE_CHECKING
count: they are promises about structure too)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# Bottom to top: a package may import its own layer's and lower layers' packages only.
LAYERS = [{"oversight_env", "routing"}, {"agents"}, {"analysis"}, {"oversight_cli"}, {"bench"}]
PACKAGES = set().union(*LAYERS)


def imports_of(path: Path) -> set[str]:
    """The project modules `path` imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from agents import train`
    return {n for n in names if n.split(".")[0] in PACKAGES}


def module_graph() -> dict[str, set[str]]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def layer(module: str) -> int:
    return next(i for i, packages in enumerate(LAYERS) if module.split(".")[0] in packages)


def test_lower_layers_never_import_higher_ones():
    upward = sorted(f"{a} -> {b}" for a, targets in module_graph().items() for b in targets if layer(b) > layer(a))
    assert upward == []


def test_no_import_cycles():
    graph = {a: {b for b in targets if b.split(".")[0] == a.split(".")[0] and "." in b} for a, targets in module_graph().items()
             if "." in a}  # a package's __init__ re-exports its modules: it sits above them, not in a cycle
    done, path = set(), []

    def visit(node):
        if node in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_the_graph_is_read():  # the tests above see real imports, not an empty graph
    graph = module_graph()
    assert "agents.config" in graph["agents.lean_trainer"] and "oversight_env.spec" in graph["agents.config"]
