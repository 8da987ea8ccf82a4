"""The rooms of the package import each other in one direction: no circle between them.

A room is a module or a subpackage of superparams (``store/``, ``cli/``, ``executors/``);
the model (what a user's class becomes) is one room of several modules. Imports are read
from the source, those made inside functions included (they are imports all the same),
those made only for type checkers left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import superparams

PACKAGE = Path(superparams.__file__).parent
MODEL = {"experiment", "space", "identity", "_columns", "_summary", "_code"}
# A space's methods (run_all, plan, results) are the front door's functions: the one
# edge back from the model, made on purpose so that `space.run_all()` reads naturally.
FRONT_DOOR = ("model", "_api")


def room(module: str) -> str:
    """The room a module ``superparams.x.y`` lives in."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "superparams"
    return "model" if name in MODEL else name


def imports(path: Path) -> Iterator[str]:
    """The superparams modules a file imports, at import time or inside functions."""
    tree = ast.parse(path.read_text())
    for_checkers = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in for_checkers:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def graph() -> dict[str, set[str]]:
    rooms = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        here = room(".".join(parts))
        for module in imports(path):
            if module.startswith("superparams.") and module.split(".")[1] in rooms:
                there = room(module)
                if there != here and (here, there) != FRONT_DOOR:
                    edges.setdefault(here, set()).add(there)
    return edges


def circle(edges: dict[str, set[str]]) -> list[str]:
    """A circle in ``edges`` as the rooms along it, or [] if there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            found = visit(nxt)
            if found:
                return found
        path.pop()
        done.add(node)
        return []

    for start in sorted(edges):
        found = visit(start)
        if found:
            return found
    return []


def test_no_circle_between_rooms():
    """No room reaches itself through the rooms it imports."""
    assert circle(graph()) == []


def test_the_check_sees_a_circle():
    """The check finds a circle where there is one, and the rooms it expects are read."""
    assert circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    edges = graph()
    assert {"cli", "store", "runner", "executors", "model"} <= set(edges)
    assert "store" in edges["runner"]
    assert "store" not in edges["model"]  # the model knows nothing of where results go


def test_the_model_and_the_store_never_print_or_parse_arguments():
    """The rooms under the command line import neither the command line nor the display."""
    edges = graph()
    for below in ("model", "store", "runner", "executors", "worker", "outcome", "events"):
        assert not edges.get(below, set()) & {"cli", "display"}, below
