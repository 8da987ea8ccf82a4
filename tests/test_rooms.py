"""The modules of the package import each other in one direction: no circle between them.

Every module is its own room (a package's ``__init__`` is the package's room). Imports are
read from the source, those made inside functions included (they are imports all the
same), those made only for type checkers left out. One edge back is kept by design and
exempted here: a space's front-door methods (``run_all``, ``plan``, ``results``,
``summary``, ``best``) call the front door, ``_api``, which the seed's
``params.run_all(...)`` needs; ``_space`` imports it lazily and says so where it does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import superparams

PACKAGE = Path(superparams.__file__).parent
FRONT_DOOR = ("superparams._space", "superparams._api")
# The command's entry points, and the front door that shows a run's progress.
ABOVE = ("superparams", "superparams.__main__", "superparams._api", "superparams._display")
ENGINES = ("dask", "ray", "slurm", "_local", "_inline")


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_of(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> Iterator[str]:
    """The superparams modules a file imports, at import time or inside functions."""
    here = module_of(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
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
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                whole = f"{module}.{alias.name}"
                yield whole if whole in MODULES else module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def graph() -> dict[str, set[str]]:
    """Each module's edges to the other modules of the package it imports."""
    edges: dict[str, set[str]] = {}
    for here, path in MODULES.items():
        for module in imports(path):
            while module and module not in MODULES:
                module = module.rpartition(".")[0]
            if module.startswith("superparams") and module not in (here, *_exempt(here)):
                edges.setdefault(here, set()).add(module)
    return edges


def _exempt(module: str) -> tuple[str, ...]:
    return (FRONT_DOOR[1],) if module == FRONT_DOOR[0] else ()


def circle(edges: dict[str, set[str]]) -> list[str]:
    """A circle in ``edges`` as the modules along it, or [] if there is none."""
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


def test_no_circle_between_modules():
    """No module reaches itself through the modules it imports."""
    assert circle(graph()) == []


def test_the_check_sees_a_circle():
    """The check finds a circle where there is one, and reads the edges it expects."""
    assert circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    edges = graph()
    assert "superparams._store._writer" in edges["superparams._runner"]
    # imports inside functions count: the front door loads the runner only when it runs
    assert "superparams._runner" in edges["superparams._api"]
    assert "superparams._api" not in edges.get("superparams._space", set())  # exempted


def test_the_model_and_the_store_never_print_or_parse_arguments():
    """The modules under the command line import neither the command line nor the display."""
    edges = graph()
    below = [m for m in MODULES if not m.startswith(("superparams._cli", "superparams._view"))]
    for module in below:
        if module in (
            "superparams",
            "superparams.__main__",
            "superparams._api",
            "superparams._display",
        ):
            continue  # the command's entry points, and the front door that shows progress
        reached = {m for m in edges.get(module, ()) if m.startswith("superparams._cli")}
        assert not reached, module
        assert "superparams._display" not in edges.get(module, ()), module


def test_no_engine_is_named_outside_the_executors():
    """Only ``executors/`` imports an engine's module: the rest asks the seam by name."""
    engines = {f"superparams.executors.{e}" for e in ENGINES}
    named = {
        module: sorted(m for m in edges if any(m == e or m.startswith(e + ".") for e in engines))
        for module, edges in graph().items()
        if not module.startswith("superparams.executors")
    }
    assert {module: found for module, found in named.items() if found} == {}


def private_imports() -> dict[str, list[str]]:
    """Each module's imports of another module's ``_private`` names (modules aside: every
    module of the package but the public ones is private, and says so by its name)."""
    found: dict[str, list[str]] = {}
    for here, path in MODULES.items():
        package = here.split(".") if path.name == "__init__.py" else here.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if not module.startswith("superparams") or module == here:
                continue
            for alias in node.names:
                name = alias.name
                if (
                    name.startswith("_")
                    and not name.startswith("__")
                    and f"{module}.{name}" not in MODULES
                ):
                    found.setdefault(here, []).append(f"{module}.{name}")
    return found


def test_no_module_imports_another_modules_private_names():
    """A name another module imports is the package's own: it carries no underscore."""
    assert private_imports() == {}
