"""The package's modules import each other without circles, and none grows past ~300 logical lines.

Every import of a project module counts, the ones inside functions too (a circle made of deferred
imports still ties the modules together). ``from package import name`` is an edge to the submodule
``package.name`` where there is one, else to ``package``.
"""

from __future__ import annotations

import ast
import tokenize
from pathlib import Path

PACKAGE = "airflow_provider_uci"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
#: Logical lines (statements, as the tokenizer ends them): the formatter's line breaks inside a call
#: or a literal do not count, so the bound is on how much a module does, not on how it is laid out.
LONGEST_MODULE = 300


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules that module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {target for target in targets if target in known and target != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_imports_itself_round_a_circle() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert sum(len(targets) for targets in graph.values()) > 100, "the imports were read"
    assert f"{PACKAGE}.exhaust.warehouse.views" in graph[f"{PACKAGE}.exhaust.warehouse.base"]
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(" <-> ".join(group) for group in found)


def logical_lines(path: Path) -> int:
    with path.open("rb") as source:
        return sum(1 for token in tokenize.tokenize(source.readline) if token.type == tokenize.NEWLINE)


def test_no_module_is_longer_than_about_300_logical_lines() -> None:
    lengths = {name: logical_lines(path) for name, path in modules().items()}
    assert len(lengths) > 50
    longer = {name: length for name, length in lengths.items() if length > LONGEST_MODULE}
    assert not longer, f"modules over {LONGEST_MODULE} logical lines: {longer}"
