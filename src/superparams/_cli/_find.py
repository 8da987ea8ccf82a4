"""Finding the experiments a person names on the command line.

The names the ``experiment`` command accepts::

    params.Hyperparams        class Hyperparams in params.py
    RQ1                       every experiment in RQ1.py
    index.RQ1                 class RQ1 in index.py, or every experiment in index/RQ1.py
    path/to/file.py:Class     a class in a file anywhere (path/to/file.py: all of its)

Dotted names are looked up in the working directory (and the folder of an
``experiments/__main__.py`` calling :func:`superparams.entrypoint`), then in the folders
just below it, so ``experiments/params.py`` is found from inside ``experiments/`` and
from the folder above. A file is imported under the module name Python would give it
(the folders above it that are packages lead its name), so the same file always gets
the same name, and worker processes can import it again.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from superparams._declared import declared
from superparams.errors import (
    ExperimentError,
    LoadError,
    SearchSpaceError,
    UsageError,
    did_you_mean,
)

if TYPE_CHECKING:
    from superparams._experiment import Experiment
    from superparams._space import Space

# Folders below the working directory never searched for experiments.
_SKIP = frozenset(
    {"progress", "node_modules", "__pycache__", "site-packages", "build", "dist", "venv", "env"}
)


@dataclass(frozen=True)
class Found:
    """The experiments a name stands for, and the file they are in.

    ``targets`` are what runs, in the file's order: experiment classes (each its default
    space) and spaces defined at module level (a union, say), the latter under
    ``names``, the names the file gives them.
    """

    name: str
    path: Path
    targets: tuple[type[Experiment] | Space[Any], ...]
    names: tuple[str, ...] = ()

    @property
    def classes(self) -> tuple[type[Experiment], ...]:
        """The experiment classes of the targets, each once, in order."""
        out: dict[type[Experiment], None] = {}
        for target in self.targets:
            out[target if isinstance(target, type) else target.experiment_class] = None
        return tuple(out)


def find(name: str, home: Path | None = None) -> Found:
    """The experiments ``name`` stands for.

    Raises:
        UsageError: no experiment has that name, or several do.
        LoadError: the file that holds it raised on import.
    """
    left, colon, right = name.rpartition(":")
    if colon and (left.endswith(".py") or os.sep in left or "/" in left):
        return _by_path(name, Path(left), right or None)
    if not colon and (name.endswith(".py") or os.sep in name or "/" in name):
        return _by_path(name, Path(name), None)
    if colon:  # module:Class
        parts, only_class = [*left.split("."), right], True
    else:
        parts, only_class = name.split("."), False
    if not all(parts):
        msg = f"{name!r} is not an experiment name; write e.g. params.Hyperparams or RQ1"
        raise UsageError(msg)
    misses: list[str] = []
    for tier in _tiers(home):
        candidates: dict[Path, str | None] = {}
        for root in tier:
            for path, cls_name in _candidates(root, parts, only_class):
                candidates.setdefault(path, cls_name)
        if len(candidates) > 1:
            # Read before importing: two files may share a module name, and only one
            # of them can be imported under it.
            likely = {p: c for p, c in candidates.items() if _may_define(p, c)}
            if len(likely) > 1:
                raise UsageError(_ambiguous(name, list(likely.items())))
            candidates = likely or candidates
        matches = [
            found
            for path, cls_name in candidates.items()
            if (found := _match(name, path, cls_name, misses)) is not None
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(_ambiguous(name, [(m.path, _only_class(m)) for m in matches]))
    raise UsageError(_unknown(name, parts, home, misses))


def find_recorded(name: str, home: Path | None = None) -> Found | None:
    """The experiment ``name`` names, rebuilt from what its last run recorded in its
    results folder, without importing its module; None when that cannot stand for it
    (see :mod:`superparams._recorded`): then :func:`find` imports it."""
    from superparams._recorded import rebuilt, unchanged
    from superparams._store._classfile import read_class
    from superparams._store._location import beside, trust
    from superparams.errors import StoreError

    located = locate(name, home)
    if located is None:
        return None
    path, cls_name = located
    folder, _ = beside(path, cls_name)
    try:  # a folder another user could change is refused by the read, after the import
        trust(folder, folder.parent.parent)
    except StoreError:
        return None
    recorded = read_class(folder)
    if recorded is None or recorded.get("class") != cls_name or not unchanged(recorded):
        return None
    if str(path) not in recorded["files"]:
        return None  # recorded for a file of the same name elsewhere
    cls = rebuilt(recorded, path)
    if cls is None:
        return None
    return Found(name, path, (cls,), (cls_name,))


def locate(name: str, home: Path | None = None) -> tuple[Path, str] | None:
    """The file and class ``name`` names, found as :func:`find` finds them but without
    importing anything: only when it names one class, in one file whose text defines it
    (else None, and :func:`find` decides)."""
    left, colon, right = name.rpartition(":")
    if colon and (left.endswith(".py") or os.sep in left or "/" in left):
        path = Path(left)
        if not right or not path.is_file():
            return None
        path = path.resolve()
        return (path, right) if right in _experiment_classes(path, any_base=True) else None
    if not colon and (name.endswith(".py") or os.sep in name or "/" in name):
        return None  # every experiment of a file
    parts = [*left.split("."), right] if colon else name.split(".")
    if len(parts) < 2 or not all(parts):
        return None
    for tier in _tiers(home):
        candidates: dict[Path, str | None] = {}
        for root in tier:
            for path, cls_name in _candidates(root, parts, only_class=bool(colon)):
                candidates.setdefault(path, cls_name)
        if not candidates:
            continue
        if len(candidates) > 1:
            return None
        [(path, cls_name)] = candidates.items()
        if cls_name is None or not _may_define(path, cls_name):
            return None
        return path, cls_name
    return None


def _by_path(name: str, path: Path, cls_name: str | None) -> Found:
    if path.is_dir() and (path / "__init__.py").is_file():
        path = path / "__init__.py"
    if not path.is_file():
        msg = f"no file {str(path)!r} (from {name!r})"
        raise UsageError(msg)
    misses: list[str] = []
    found = _match(name, path.resolve(), cls_name, misses, by_path=True)
    if found is None:
        raise UsageError(misses[0])
    return found


def _tiers(home: Path | None) -> list[list[Path]]:
    """Where dotted names are looked for: first here, then the folders just below."""
    cwd = Path.cwd()
    first = _unique([p for p in (home, cwd) if p is not None])
    below = []
    try:
        children = sorted(cwd.iterdir(), key=lambda p: (p.name != "experiments", p.name))
    except OSError:
        children = []
    for child in children:
        if _searchable(child) and child.resolve() not in first:
            below.append(child.resolve())
    return [first, below]


def _unique(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        resolved = path.resolve()
        if resolved not in out:
            out.append(resolved)
    return out


def _searchable(folder: Path) -> bool:
    name = folder.name
    if name.startswith((".", "_")) or name in _SKIP or name.endswith(".egg-info"):
        return False
    try:
        return folder.is_dir() and not (folder / "pyvenv.cfg").exists()
    except OSError:
        return False


def _candidates(root: Path, parts: list[str], only_class: bool) -> list[tuple[Path, str | None]]:
    """The files a dotted name may mean under ``root``, each with the class it names."""
    out: list[tuple[Path, str | None]] = []
    if len(parts) > 1:
        base = root.joinpath(*parts[:-1])
        for path in (base.parent / f"{base.name}.py", base / "__init__.py"):
            if path.is_file():
                out.append((path.resolve(), parts[-1]))
    if not only_class:
        base = root.joinpath(*parts)
        for path in (base.parent / f"{base.name}.py", base / "__init__.py"):
            if path.is_file():
                out.append((path.resolve(), None))
    return out


def _match(
    name: str, path: Path, cls_name: str | None, misses: list[str], *, by_path: bool = False
) -> Found | None:
    """The experiments of ``path`` that ``name`` means, or None (noting why in misses)."""
    from superparams._experiment import Experiment
    from superparams._space import Space

    module = load(path, first=by_path)
    if cls_name is None:
        targets = runnables_in(module)
        if targets:
            return Found(name, path, tuple(t for _, t in targets), tuple(n for n, _ in targets))
        misses.append(
            f"{shown(path)} has no experiment: no subclass of Experiment with a run() method"
        )
        return None
    obj = getattr(module, cls_name, None)
    if isinstance(obj, type) and issubclass(obj, Experiment) and obj is not Experiment:
        return Found(name, path, (obj,), (cls_name,))
    if isinstance(obj, Space):
        return Found(name, path, (obj,), (cls_name,))
    names = [n for n, _ in runnables_in(module)]
    listed = f"; its experiments are {', '.join(names)}" if names else "; it has no experiments"
    if obj is None:
        what = f"has no experiment {cls_name!r}{did_you_mean(cls_name, names)}"
    else:
        what = f"has {cls_name!r}, but it is not an Experiment subclass nor a space of one"
    misses.append(f"{shown(path)} {what}{listed}")
    return None


def experiments_in(module: ModuleType) -> list[type[Experiment]]:
    """The experiments a module defines, in order: its Experiment subclasses with run(),
    but not the components, the classes only other experiments' fields are typed with."""
    from superparams._experiment import Experiment

    found = []
    for attr, obj in vars(module).items():
        if (
            attr.startswith("_")
            or not isinstance(obj, type)
            or not issubclass(obj, Experiment)
            or obj is Experiment
            or obj.__module__ != module.__name__
            or obj.run is Experiment.run  # a base class that others build on
        ):
            continue
        found.append(obj)
    parts = _components(found)
    return [cls for cls in found if cls not in parts]


def runnables_in(module: ModuleType) -> list[tuple[str, type[Experiment] | Space[Any]]]:
    """What ``experiment FILE`` runs, in the order the module defines it: its experiments
    (see :func:`experiments_in`) and the unions of settings it assigns at its top level."""
    from superparams._space import Union

    experiments = set(experiments_in(module))
    found: list[tuple[str, type[Experiment] | Space[Any]]] = []
    for attr, obj in vars(module).items():
        if attr.startswith("_"):
            continue
        if obj in experiments or isinstance(obj, Union):
            found.append((attr, obj))
    return found


def _components(classes: list[type[Experiment]]) -> set[type]:
    """The classes that are the type of a field of another of ``classes``."""
    import typing

    def mentioned(annotation: Any) -> set[type]:
        if isinstance(annotation, type):
            return {annotation}
        out: set[type] = set()
        for arg in typing.get_args(annotation):
            out |= mentioned(arg)
        return out

    parts: set[type] = set()
    for cls in classes:
        for name, annotation in declared(cls).annotations.items():
            if name in declared(cls).fields:
                parts |= mentioned(annotation) - {cls}
    return parts


# -- importing a file ----------------------------------------------------------------------


def module_name(path: Path) -> tuple[str, Path]:
    """The module name Python gives a file, and the folder it is imported from.

    Folders holding an ``__init__.py`` are packages, and lead the name:
    ``experiments/params.py`` is ``params`` (imported from ``experiments/``), unless
    ``experiments/__init__.py`` exists (then ``experiments.params``, from the folder above).
    """
    path = path.resolve()
    if path.name == "__init__.py":
        parts, folder = [path.parent.name], path.parent.parent
    else:
        parts, folder = [path.stem], path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts), folder


def load(path: Path, *, first: bool = True) -> ModuleType:
    """Import the file at ``path`` under its module name (see :func:`module_name`).

    The folder it is imported from goes on ``sys.path``: first, as ``python file.py``
    puts a script's folder (``first``, for a file named by its path), or else just after
    the standard library (for a dotted name found here or below), so that a stray
    ``colorsys.py`` in the working directory is never imported in place of the standard
    library's, while the user's own modules still win over installed packages. A file
    that is itself named like a standard module (``sched.py``) is the one named: its
    folder goes first.

    Raises:
        LoadError: the file raised while being imported.
        UsageError: its module name is taken by another module.
    """
    path = path.resolve()
    name, root = module_name(path)
    module = sys.modules.get(name)
    if module is None:
        entry = str(root)
        if entry in sys.path:
            sys.path.remove(entry)
        # A file named like a module of the standard library (sched.py) is the one asked
        # for: its folder goes first, or the standard library's module would be imported.
        first = first or name.partition(".")[0] in getattr(sys, "stdlib_module_names", ())
        sys.path.insert(0 if first else after_stdlib(sys.path), entry)
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(name)
        except (ExperimentError, SearchSpaceError) as error:
            # A class superparams refuses to make: its one line says what to change.
            raise UsageError(str(error)) from None
        except (Exception, SystemExit) as error:
            msg = f"could not import {shown(path)}:\n{_user_traceback(error).rstrip()}"
            raise LoadError(msg) from None
    source = getattr(module, "__file__", None)
    if source is None or Path(source).resolve() != path:
        where = shown(Path(source)) if source else "a built-in module"
        msg = (
            f"{shown(path)} would be imported as {name!r}, but that name is already "
            f"{where}; rename the file"
        )
        raise UsageError(msg)
    return module


def after_stdlib(path: list[str]) -> int:
    """The position in ``path`` just after the standard library's entries (0 if none).

    The standard library is the folder ``os`` was imported from, the folders inside it
    other than site-packages (``lib-dynload``), and the zip beside it.
    """
    from superparams._code import installed, stdlib_roots

    roots = stdlib_roots()
    position = 0
    for i, entry in enumerate(path):
        full = os.path.abspath(entry) if entry else ""
        if installed(full):
            continue
        inside = any(full == root or full.startswith(root + os.sep) for root in roots)
        zipped = full.endswith(".zip") and any(
            os.path.dirname(full) == os.path.dirname(root) for root in roots
        )
        if inside or zipped:
            position = i + 1
    return position


_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # superparams/
_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__))


def _user_traceback(error: BaseException) -> str:
    """The traceback of an import, without the import machinery's frames or ours."""
    shown_tb = traceback.TracebackException.from_exception(error)
    frames = [
        f
        for f in shown_tb.stack
        if not f.filename.startswith("<frozen")
        and os.path.dirname(f.filename) != _IMPORTLIB
        and not f.filename.startswith(os.path.join(_OURS, ""))
    ]
    shown_tb.stack = traceback.StackSummary.from_list(frames)
    return "".join(shown_tb.format())


def shown(path: Path | str) -> str:
    """A path as a person would type it from here."""
    text = str(path)
    try:
        relative = os.path.relpath(text)
    except ValueError:
        return text
    return text if relative.startswith(".." + os.sep + "..") else relative


# -- when a name is not found ----------------------------------------------------------------


def _only_class(found: Found) -> str | None:
    return found.names[0] if len(found.targets) == 1 and found.names else None


def _may_define(path: Path, cls_name: str | None) -> bool:
    """Whether a file's text defines the class named, or any experiment (without import)."""
    classes = _experiment_classes(path, any_base=cls_name is not None)
    return cls_name in classes if cls_name is not None else bool(classes)


def _ambiguous(name: str, matches: list[tuple[Path, str | None]]) -> str:
    options = [f"{shown(p)}:{c}" if c is not None else shown(p) for p, c in matches]
    return f"{name!r} is ambiguous: it names {' and '.join(options)}; name one of them instead"


def _unknown(name: str, parts: list[str], home: Path | None, misses: list[str]) -> str:
    if misses:
        return misses[0]
    names = known_names(home)
    hint = did_you_mean(name, names)
    if not hint and len(parts) > 1:
        module_hint = did_you_mean(".".join(parts[:-1]), names)
        if module_hint:
            module = module_hint.split("'")[1]
            hint = f" (did you mean {module + '.' + parts[-1]!r}?)"
    listed = f"; experiments here: {', '.join(names[:15])}" if names else ""
    if len(names) > 15:
        listed += ", …"
    where = "here or in the folders below"
    return f"no experiment {name!r} {where}{hint}{listed}"


def known_names(home: Path | None = None) -> list[str]:
    """The names of the experiments nearby, read from the files without importing them.

    Each is the shortest name that leads to its file from here.
    """
    tiers = _tiers(home)
    files: list[tuple[Path, Path]] = []  # (root, file)
    for depth, tier in enumerate(tiers):
        for root in tier:
            files += [(root, path) for path in sorted(root.glob("*.py"))]
            if depth == 0:
                files += [(root, path) for path in sorted(root.glob("*/*.py"))]
    names: dict[tuple[Path, str], str] = {}  # (file, class) -> its shortest name
    for root, path in files:
        if path.name.startswith("_") or path.stem in ("setup", "conftest"):
            continue
        module = list(path.relative_to(root).with_suffix("").parts)
        for cls in _experiment_classes(path):
            parts = [*module, cls]
            key = (path.resolve(), cls)
            shorter = key not in names or len(parts) < names[key].count(".") + 1
            if shorter and _leads_to(parts, path.resolve(), tiers):
                names[key] = ".".join(parts)
    return sorted(set(names.values()), key=lambda n: (n.count("."), n))


def _leads_to(parts: list[str], path: Path, tiers: list[list[Path]]) -> bool:
    for tier in tiers:
        found = {p for root in tier for p, _ in _candidates(root, parts, only_class=False)}
        if found:
            return found == {path}
    return False


def _experiment_classes(path: Path, *, any_base: bool = False) -> list[str]:
    """Classes in a file whose bases lead to something named ``...Experiment``, with run().

    With ``any_base``, every class the file defines at its top level.
    """
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError, OSError):
        return []
    runs: dict[str, bool] = {}  # experiment classes of the file -> whether they have run()
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if any_base:
            found.append(node.name)
            continue
        bases = [
            b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases
        ]
        if not any(b.endswith("Experiment") or b in runs for b in bases):
            continue
        defines = any(
            isinstance(item, ast.FunctionDef) and item.name == "run" for item in node.body
        )
        runs[node.name] = defines or any(runs.get(b, False) for b in bases)
        if runs[node.name] and not node.name.startswith("_"):
            found.append(node.name)
    return found
