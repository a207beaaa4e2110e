"""No import cycles between core's modules at module level: the layers (methods, analyses, storage, work)
import downwards. Imports inside functions are left out on purpose: a registry may load its entries lazily."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_graph(package: Path) -> dict[str, set[str]]:
    """Each module of `package` and the package's modules it imports at module level."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    imported.add(candidate if candidate in modules else node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_core_has_no_module_level_import_cycle():
    graph = module_graph(ROOT / "core")
    assert len(graph) > 50 and "core.work.tasks" in graph["core.work.builds"]  # the graph is the real one
    assert cycles(graph) == []


def test_the_check_finds_a_cycle_it_is_shown(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("import pkg.c\nthing = 1\n")
    (package / "c.py").write_text("from pkg import a\n")
    assert cycles(module_graph(package)) == [["pkg.a", "pkg.b", "pkg.c"]]


# Each folder of core may import only from folders below it: storage and the shared result value at the bottom,
# then the link library and the model engine, the methods, the analyses built on them, and the work (tasks).
# The word layer sits under the result value that records its words.
LAYERS = {"plugins": 0, "words": 0, "params": 0, "spreadsheet": 0, "storage": 0, "explanation": 0.5, "render": 0, "library": 1, "engine": 1, "methods": 2, "analyses": 3,
          "work": 4, "charts": 5, "addresses": 5, "cli": 6, "__main__": 7}


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module imports a folder at its own level or above, other than its own."""
    def layer(module: str) -> str:
        return module.split(".")[1] if "." in module else "__main__"

    return sorted((module, dep) for module, deps in graph.items() for dep in deps
                  if layer(module) != layer(dep) and LAYERS[layer(dep)] >= LAYERS[layer(module)])


def test_core_folders_import_only_downwards():
    graph = module_graph(ROOT / "core")
    assert {m.split(".")[1] for m in graph if m.count(".") >= 2} == {
        "analyses", "cli", "engine", "library", "methods", "storage", "work"}
    assert upward_imports(graph) == []


def test_an_upward_import_is_shown():
    graph = module_graph(ROOT / "core")
    graph["core.storage.db"] = graph["core.storage.db"] | {"core.work.tasks"}
    assert upward_imports(graph) == [("core.storage.db", "core.work.tasks")]
