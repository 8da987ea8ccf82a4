"""The version of an experiment's code: what made a stored row, worked out once per run.

This room owns :func:`code_version`: a short hash of the code a setting runs, and the
git commit it sits on. It hashes, for the experiment class, its experiment bases (but
superparams' own) and the other bases defined in the same file:

* every function defined on the class (``run``, ``is_valid``, ``__post_init__``, helpers,
  properties, static and class methods), but not the methods ``dataclass`` generates;
* the functions of its ``derived`` fields, and the classes of nested experiment fields;
* the module-level functions and classes those use (names the bytecode loads as
  globals, followed transitively within the module that defines each function).

It never hashes the field declarations (their values are already in each setting's id,
so widening a search or adding a field with a default keeps what was run), imported
modules, module-level constants, or data files.

A function is hashed by its syntax tree, read from its source, so comments, blank lines,
formatting and docstrings do not count as changes, and neither does a new Python
version. The source is used only when it is what runs: the file is compiled once and
each function's bytecode compared with the loaded one; when they differ (the file was
edited after it was imported) or there is no source (``python -c``, stdin), the loaded
bytecode is hashed instead. This room runs no experiment and stores nothing.
"""

from __future__ import annotations

import ast
import contextlib
import dis
import functools
import hashlib
import inspect
import linecache
import os
import shutil
import subprocess
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superparams._declared import declared

#: Methods ``dataclass`` writes from the field declarations: never the user's code.
GENERATED = frozenset(
    {
        "__init__",
        "__repr__",
        "__eq__",
        "__hash__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__setattr__",
        "__delattr__",
        "__replace__",
        "__getstate__",
        "__setstate__",
    }
)
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_DOCUMENTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class CodeVersion:
    """What made a run's outcomes: a hash of the experiment's code, and its git state."""

    version: str  # 12 hex digits
    git_commit: str | None = None  # HEAD, when the file is in a git repository
    git_dirty: bool | None = None  # tracked files differ from HEAD, or the file is untracked


def code_version(cls: type, *, git: bool = True) -> CodeVersion:
    """The version of ``cls``'s code; with ``git``, also the commit its file is on."""
    version = code_hash(cls)
    if not git:
        return CodeVersion(version)
    commit, dirty = git_state(_defining_file(cls))
    return CodeVersion(version, commit, dirty)


def code_hash(cls: type) -> str:
    """A short hash of the code ``cls`` runs (see the module docstring for what counts).

    A class rebuilt from what a run recorded (:mod:`superparams._recorded`) has no code
    to hash: it carries the version that run worked out from the same, unchanged, files.
    """
    recorded = cls.__dict__.get("_sp_code")
    if isinstance(recorded, str):
        return recorded
    hasher = _Hasher()
    hasher.add_class(cls, experiment=True)
    return hasher.digest()


class _Hasher:
    def __init__(self) -> None:
        self.parts: dict[str, str] = {}  # qualname (and kind) -> text of the code
        self.seen: set[int] = set()
        self.sources: dict[str, _Source | None] = {}

    def digest(self) -> str:
        text = "\n".join(f"{key}\0{value}" for key, value in sorted(self.parts.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    # -- what is hashed --------------------------------------------------------------------

    def add_class(self, cls: type, *, experiment: bool) -> None:
        if id(cls) in self.seen:
            return
        self.seen.add(id(cls))
        classes = [cls]
        if experiment:  # its experiment bases, and the mixins of its own file
            from superparams._experiment import Experiment

            classes = [
                c
                for c in cls.__mro__
                if _users(c) and (issubclass(c, Experiment) or c.__module__ == cls.__module__)
            ]
        for klass in classes:
            self.seen.add(id(klass))
            for name, member in vars(klass).items():
                for function in _functions(member):
                    if name in GENERATED and function.__code__.co_filename == "<string>":
                        continue  # made by dataclass from the field declarations
                    self.add_function(function, f"{klass.__qualname__}.{name}")
            if experiment:
                self._add_declared(klass)

    def _add_declared(self, cls: type) -> None:
        """The code a class's field declarations point to: derived functions, nested classes."""
        import dataclasses

        from superparams._experiment import Experiment
        from superparams._values import Derived

        if not dataclasses.is_dataclass(cls):
            return
        own = inspect.get_annotations(cls)
        for f in dataclasses.fields(cls):
            if f.name not in own:
                continue  # declared on a base: hashed with it
            if isinstance(f.default, Derived):
                for function in _functions(f.default.compute):
                    self.add_function(function, f"{cls.__qualname__}.{f.name}:derived")
        if issubclass(cls, Experiment):
            for annotation in declared(cls).annotations.values():
                for nested in _classes_in(annotation):
                    if issubclass(nested, Experiment) and _users(nested):
                        self.add_class(nested, experiment=True)

    def add_function(self, function: types.FunctionType, key: str) -> None:
        code = function.__code__
        if id(code) in self.seen:
            return
        self.seen.add(id(code))
        self.parts[key] = self._text(function)
        module = function.__module__
        globals_ = function.__globals__
        for name in _global_names(code):
            value = globals_.get(name)
            if value is None:
                continue
            if isinstance(value, type):
                if value.__module__ == module and _users(value):
                    self.add_class(value, experiment=False)
                continue
            for used in _functions(value):
                if used.__module__ == module:
                    self.add_function(used, used.__qualname__)

    # -- how a function is written down ------------------------------------------------------

    def _text(self, function: types.FunctionType) -> str:
        code = function.__code__
        try:
            source = self._source(code.co_filename, function.__globals__)
            node = source.node_for(code) if source is not None else None
            if node is not None:
                return "ast:" + _ast_text(node)
        except (RecursionError, ValueError, TypeError, OSError):
            pass  # a tree too deep to write down, an unreadable file: the bytecode will do
        return "code:" + _bytecode(code, function.__doc__)

    def _source(self, filename: str, globals_: dict[str, Any]) -> _Source | None:
        if filename not in self.sources:
            self.sources[filename] = _Source.read(filename, globals_)
        return self.sources[filename]


class _Source:
    """One file's syntax tree, and the code it compiles to, to check it is what runs."""

    def __init__(self, tree: ast.Module, compiled: types.CodeType) -> None:
        self.nodes: dict[tuple[str, int], list[ast.AST]] = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                self.nodes.setdefault((node.name, first), []).append(node)
            elif isinstance(node, ast.Lambda):
                self.nodes.setdefault(("<lambda>", node.lineno), []).append(node)
        self.compiled: dict[tuple[str, int], list[types.CodeType]] = {}
        stack = [compiled]
        while stack:
            code = stack.pop()
            self.compiled.setdefault((code.co_name, code.co_firstlineno), []).append(code)
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))

    @classmethod
    def read(cls, filename: str, globals_: dict[str, Any]) -> _Source | None:
        linecache.checkcache(filename)  # the file as it is now, not as first read
        lines = linecache.getlines(filename, globals_)
        if not lines:
            return None
        try:
            tree = ast.parse("".join(lines), filename)
            return cls(tree, compile(tree, filename, "exec", dont_inherit=True))
        except (SyntaxError, ValueError):
            return None

    def node_for(self, code: types.CodeType) -> ast.AST | None:
        """The syntax of ``code``, if the source compiles to exactly the code loaded."""
        where = (code.co_name, code.co_firstlineno)
        nodes = self.nodes.get(where, [])
        if len(nodes) != 1:
            return None  # none, or two lambdas on one line: the bytecode tells them apart
        loaded = _bytecode(code)
        if not any(_bytecode(c) == loaded for c in self.compiled.get(where, [])):
            return None  # the file changed since it was imported: it is not what runs
        return nodes[0]


def _ast_text(node: Any) -> str:
    """A syntax tree as text, without positions, docstrings, or fields left empty."""
    if isinstance(node, ast.AST):
        fields = []
        for name, value in ast.iter_fields(node):
            if name in ("ctx", "type_comment", "kind") or value is None or value == []:
                continue
            if name == "body" and isinstance(node, _DOCUMENTED) and _docstring(value[0]):
                value = value[1:]
            fields.append(f"{name}={_ast_text(value)}")
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        return "[" + ",".join(_ast_text(v) for v in node) + "]"
    return repr(node)


def _docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _bytecode(code: types.CodeType, doc: str | None = None) -> str:
    """A code object as text: its instructions, constants (recursively) and names."""
    consts = list(code.co_consts)
    if doc is not None and consts and consts[0] == doc:
        consts = consts[1:]  # the docstring: not behaviour
    shown = []
    for const in consts:
        if isinstance(const, types.CodeType):
            shown.append(_bytecode(const))
        elif isinstance(const, frozenset):  # its order changes with the hash seed
            shown.append("frozenset(" + ",".join(sorted(map(repr, const))) + ")")
        else:
            shown.append(repr(const))
    names = (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
    return f"{code.co_name}|{code.co_code.hex()}|{shown}|{names}"


def _global_names(code: types.CodeType) -> list[str]:
    """The global names ``code`` and the code nested in it load, in order."""
    names: dict[str, None] = {}
    stack = [code]
    while stack:
        current = stack.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname in _GLOBAL_LOADS:
                names[str(instruction.argval)] = None
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return list(names)


def _functions(member: Any) -> list[types.FunctionType]:
    """The plain functions a class attribute or global holds (unwrapping decorators)."""
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if isinstance(member, property):
        return [f for m in (member.fget, member.fset, member.fdel) for f in _functions(m)]
    if isinstance(member, functools.cached_property):
        member = member.func
    if isinstance(member, type):
        return []
    try:
        member = inspect.unwrap(member)
    except Exception:  # a __wrapped__ cycle, or an object that answers any attribute oddly
        return []
    return [member] if isinstance(member, types.FunctionType) else []


def _users(cls: type) -> bool:
    """Whether a class is the user's code, not superparams', the standard library's or C's."""
    module = cls.__module__ or ""
    return module.split(".")[0] not in ("superparams", "builtins", "typing", "abc")


def _classes_in(annotation: Any) -> list[type]:
    if isinstance(annotation, type):
        return [annotation]
    args = getattr(annotation, "__args__", None) or ()
    return [c for a in args for c in _classes_in(a)]


# -- the user's files ------------------------------------------------------------------------


def stdlib_roots() -> set[str]:
    """The folders of the standard library: where ``os`` came from, and sysconfig's."""
    import sysconfig

    roots = {os.path.dirname(os.path.abspath(os.__file__))}
    for key in ("stdlib", "platstdlib"):
        with contextlib.suppress(KeyError, OSError):
            roots.add(os.path.abspath(sysconfig.get_path(key)))
    return roots


def installed(path: str) -> bool:
    """Whether ``path`` is in site-packages (or dist-packages)."""
    return "site-packages" in path or "dist-packages" in path


def user_files(cls: type) -> list[str]:
    """The files of the modules loaded now that are the user's own: not the standard
    library's, not installed (site-packages), not superparams', and not the script that
    started the process unless it defines ``cls``. Sorted, each once.

    These, with the file that defines ``cls``, are what the code of a class can depend
    on; a read may trust what a run recorded of the class while none of them changed.
    """
    import sys

    roots = tuple(os.path.join(r, "") for r in stdlib_roots())
    ours = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
    found: set[str] = set()
    defining = _defining_file(cls)
    if defining is not None:
        found.add(str(defining))
    script = sys.modules.get("__main__")  # also under other names (__mp_main__)
    if script is sys.modules.get(cls.__module__):
        script = None
    for module in list(sys.modules.values()):
        try:
            source = getattr(module, "__file__", None)
        except Exception:  # a lazy module that imports on any attribute, and fails
            continue
        if not isinstance(source, str) or not source or source.startswith("<"):
            continue
        if module is script:
            continue  # the command that started the run, not the experiment's code
        path = os.path.abspath(source)
        if path.startswith(roots) or path.startswith(ours) or installed(path):
            continue
        if os.path.isfile(path):
            found.add(os.path.realpath(path))
    return sorted(found)


def process_started() -> float | None:
    """When this process started, in seconds since the epoch (a twentieth of a second
    early at most: never late), where the system says (Linux's /proc); None elsewhere."""
    import time

    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # since boot
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK") - 0.05
    except (OSError, ValueError, IndexError):
        return None


# -- git -------------------------------------------------------------------------------------


def _defining_file(cls: type) -> Path | None:
    """The file that defines ``cls``: its module's, or else that of its own functions."""
    names = []
    with contextlib.suppress(TypeError, OSError):  # its module is gone, or it has none
        names.append(inspect.getsourcefile(cls) or inspect.getfile(cls))
    names += [f.__code__.co_filename for member in vars(cls).values() for f in _functions(member)]
    for name in names:
        if name and not name.startswith("<") and Path(name).is_file():
            return Path(name).resolve()
    return None


def git_state(path: Path | None) -> tuple[str | None, bool | None]:
    """HEAD of the repository holding ``path``, and whether its worktree is dirty.

    Dirty means a tracked file differs from HEAD (staged or not), or ``path`` itself is
    not committed. ``(None, None)`` outside a repository or without git; a repository
    with no commit yet gives ``(None, True)``.
    """
    git = shutil.which("git")
    if path is None or git is None:
        return None, None
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    status = _git(git, path.parent, env, "status", "--porcelain=v2", "--branch", "-uno")
    if status is None:
        return None, None
    commit: str | None = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ").strip()
            commit = oid if oid != "(initial)" else None
        elif line and not line.startswith("#"):
            dirty = True
    if commit is None:
        return None, True
    if not dirty:
        tracked = _git(git, path.parent, env, "ls-files", "--error-unmatch", "--", path.name)
        dirty = tracked is None
    return commit, dirty


def _git(git: str, cwd: Path, env: dict[str, str], *args: str) -> str | None:
    try:
        done = subprocess.run(
            [git, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
