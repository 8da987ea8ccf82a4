"""Where an experiment class keeps its results, and what names it there.

A class defined in a file stores beside it, under ``progress/<file stem>/<Class>``; a class
defined in a Jupyter notebook beside the notebook, under its name. The folder records the
class's identity (:func:`identity_of`): its file relative to the folder holding
``progress/``, and its qualified name. A class that no file or notebook defines has no
folder of its own. This room reads no results and writes nothing.

A folder is used only when no other user can change it (:func:`trust`): each folder from
the results folder up to the progress root is yours or root's, and writable by no one
else unless it is sticky; one that is not stops everything before a byte is written.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams.errors import StoreError, UsageError

if TYPE_CHECKING:
    from superparams._experiment import Experiment


def folder_for(cls: type[Experiment]) -> Path:
    """Where an experiment class keeps its results: beside the file that defines it.

    ``experiments/params.py`` with class ``Hyperparams`` stores under
    ``experiments/progress/params/Hyperparams``; a notebook ``explore.ipynb`` with class
    ``Train`` under ``progress/explore/Train`` beside it. ``SUPERPARAMS_PROGRESS``
    replaces the ``experiments/progress`` part.

    Raises:
        UsageError: no file or notebook defines the class (``python -c``, a REPL, code
            piped to ``python -``, ``exec``): it needs ``folder=``.
    """
    return location(cls)[0]


def location(cls: type[Experiment]) -> tuple[Path, Path]:
    """The class's default results folder, and the folder its identity is relative to.

    That is the folder holding ``progress/``: beside the file, or the parent of
    ``SUPERPARAMS_PROGRESS``.
    """
    source = source_of(cls)
    if source is None:
        name = cls.__name__
        fix = (
            f"pass folder= to run_all(), results() and plan(), e.g. "
            f"{name}().run_all(folder='progress/{name}')"
        )
        if _in_kernel(cls):
            found = _notebooks_defining(cls, Path.cwd())
            which = f"{len(found)} notebooks there define it" if found else "none there does"
            msg = (
                f"{name} is defined in a Jupyter kernel that was not told its notebook "
                f"(run by nbconvert or papermill, say), and it looked for the notebook in its "
                f"working directory {str(Path.cwd())!r}: {which}; start the kernel in the "
                f"notebook's folder, or {fix}"
            )
            raise UsageError(msg)
        msg = (
            f"{name} is defined in {cls.__module__!r}, which no file or notebook names, so "
            f"it has no results folder of its own; {fix}"
        )
        raise UsageError(msg)
    return beside(source, cls.__qualname__)


def beside(source: Path, qualname: str) -> tuple[Path, Path]:
    """The default results folder of the class ``qualname`` that ``source`` defines, and
    the folder its identity is relative to (see :func:`location`)."""
    base = source.parent / "progress"
    root = os.environ.get("SUPERPARAMS_PROGRESS")
    if root:
        base = Path(root).expanduser().resolve()
    name = qualname.replace("<locals>.", "").replace(".", "_")
    return base / source.stem / name, base.parent


def source_of(cls: type[Experiment]) -> Path | None:
    """The file or notebook that defines an experiment class, or None if none does.

    A class whose ``run`` was compiled from a string (``python -c``, stdin, a REPL,
    ``exec``) has none, whatever its module. In a Jupyter kernel, the notebook is the
    path ipykernel gives the user's namespace (``__session__``, from Jupyter's
    ``JPY_SESSION_NAME``), or VS Code's ``__vsc_ipynb_file__``. A kernel told neither
    (``jupyter nbconvert --execute``, papermill) starts in the notebook's folder: the
    notebook is the one there whose code defines the class (see :func:`_found_notebook`).
    """
    import sys

    recorded = cls.__dict__.get("_sp_source")  # a class rebuilt from its record
    if isinstance(recorded, Path):
        return recorded
    code = getattr(cls.__dict__.get("run"), "__code__", None)
    if code is not None and code.co_filename.startswith("<"):
        return None
    module = sys.modules.get(cls.__module__)
    source = getattr(module, "__file__", None)
    if isinstance(source, str) and source and not source.startswith("<"):
        return Path(source).resolve()
    if module is None or cls.__module__ != "__main__":
        return None
    names = vars(module)
    candidates = [names.get("__vsc_ipynb_file__"), names.get("__session__")]
    if "ipykernel" in sys.modules:  # an older ipykernel sets no __session__
        candidates.append(os.environ.get("JPY_SESSION_NAME"))
    for candidate in candidates:
        if not isinstance(candidate, str) or not candidate:
            continue
        path = Path(candidate).expanduser()
        if not path.is_absolute() and not path.exists():
            # Before jupyter_server 2.0.7 the path was relative to the server's root; the
            # kernel starts in the notebook's folder.
            path = Path(path.name)
        if path.suffix == ".ipynb" or path.is_file():
            return path.resolve()
    if _in_kernel(cls):
        return _found_notebook(cls, Path.cwd())
    return None


def _in_kernel(cls: type[Experiment]) -> bool:
    """Whether the class was defined by a cell a Jupyter kernel ran."""
    import sys

    return cls.__module__ == "__main__" and "ipykernel" in sys.modules


def _found_notebook(cls: type[Experiment], folder: Path) -> Path | None:
    """The notebook in ``folder`` whose code defines the class, or None.

    Several may (an executed copy beside its notebook, papermill's output): then the
    one that the command which started the kernel names first, as nbconvert and papermill
    name the notebook they run before the one they write.
    """
    found = _notebooks_defining(cls, folder)
    if len(found) <= 1:
        return found[0] if found else None
    words = _parent_words()
    for before, word in zip(["", *words], words, strict=False):
        if word.startswith("-") or before in ("--output", "-o", "--output-dir"):
            continue  # nbconvert's --output names the copy it writes
        path = (folder / word).resolve()
        if path in found:
            return path
    return None


def _notebooks_defining(cls: type[Experiment], folder: Path) -> list[Path]:
    """The notebooks in ``folder`` with a code cell holding the class's statement and the
    source of each function it defines (``run``), as the kernel compiled them."""
    import inspect
    import json
    import re

    pieces = []
    for value in vars(cls).values():
        if hasattr(value, "__code__"):
            try:
                pieces.append(inspect.getsource(value).strip())
            except (OSError, TypeError):
                continue
    statement = re.compile(rf"^\s*class\s+{re.escape(cls.__name__)}\b", re.MULTILINE)
    found = []
    try:
        notebooks = sorted(p for p in folder.iterdir() if p.suffix == ".ipynb" and p.is_file())
    except OSError:
        return []
    for path in notebooks:
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        except (OSError, ValueError, AttributeError):
            continue
        for cell in cells if isinstance(cells, list) else []:
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            text = cell.get("source", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            if statement.search(text) and all(piece in text for piece in pieces):
                found.append(path.resolve())
                break
    return found


def _parent_words() -> list[str]:
    """The words of the command that started this process, where the system says them."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [w.decode(errors="replace") for w in raw.split(b"\0") if w]


def identity_of(cls: type[Experiment], home: Path | None) -> dict[str, str | None]:
    """What ``experiment.json`` records for a class: its file, relative to ``home`` when
    inside it (else absolute), its qualified name, and the file's absolute path.

    Two identities are the same experiment when their classes match and so does either
    form of the file: the relative one survives moving the project with its results, the
    absolute one a ``folder=`` that names the default folder.
    """
    source = source_of(cls)
    file = path = None
    if source is not None:
        file = path = source.as_posix()
        if home is not None and source.is_relative_to(home.resolve()):
            file = source.relative_to(home.resolve()).as_posix()
    return {"file": file, "class": cls.__qualname__, "path": path}


def named(identity: Mapping[str, Any]) -> str:
    file, name = identity.get("file"), identity.get("class")
    return f"{file}:{name}" if file else str(name)


def make_folders(path: Path) -> None:
    """Make a folder and its missing parents, none writable by group or others whatever
    the umask. A folder that exists (or a link to one) is left as it is."""
    missing = []
    while not path.is_dir() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o755)
        except FileExistsError:
            if folder.is_dir():
                continue
            raise
        mode = stat.S_IMODE(os.stat(folder).st_mode)
        if mode & 0o022:  # a default ACL can grant what the umask would not
            os.chmod(folder, mode & ~0o022)


def trust(
    folder: Path, root: Path | None = None, holds: Callable[[Path], bool] | None = None
) -> None:
    """Refuse ``folder`` when another user could change it, or anything up to ``root``.

    Each folder that exists from ``root`` (the progress root, or ``folder`` itself) down
    to ``folder`` must be owned by you or root, and writable by no one else unless it is
    sticky (a shared scratch disk, mode 1777). A link among them is followed only to a
    folder of yours that passes the same check, the link itself yours or root's; a link
    that is ``folder`` itself must also lead to an empty folder or one that ``holds``
    (this experiment's identity). A folder that does not exist yet passes: it is made
    writable by you alone (:func:`make_folders`).

    Raises:
        StoreError: naming the folder, who owns it or what it allows, and what to do.
    """
    chain = [folder]
    if root is not None and folder != root and folder.is_relative_to(root):
        path = folder
        while path != root:
            path = path.parent
            chain.append(path)
    for path in reversed(chain):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue  # made by the run, writable by you alone
        except OSError:
            continue  # not a folder to check (a file in its place): its use says so
        if stat.S_ISLNK(info.st_mode):
            _trust_owner(path, info, link=True)
            try:
                target = os.stat(path)
            except OSError:
                continue  # a dangling link: making the folder fails, and says so
            if target.st_uid != os.geteuid():
                _refuse(path, f"is a link to a folder owned by {_user(target.st_uid)}, not you")
            _trust_mode(path, target)
            if path == folder and holds is not None and not _empty_or(path, holds):
                _refuse(path, "is a link to a folder that holds something else")
        elif stat.S_ISDIR(info.st_mode):
            _trust_owner(path, info)
            _trust_mode(path, info)


def _trust_owner(path: Path, info: os.stat_result, *, link: bool = False) -> None:
    if info.st_uid not in (os.geteuid(), 0):
        what = "is a link made by" if link else "is owned by"
        _refuse(path, f"{what} {_user(info.st_uid)}, not you")


def _trust_mode(path: Path, info: os.stat_result) -> None:
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        mode = stat.S_IMODE(info.st_mode)
        fix = None
        if info.st_uid == os.geteuid():
            fix = f"`chmod go-w {shlex.quote(os.fspath(path))}` if it is for you alone"
        _refuse(path, f"can be changed by other users (mode {mode:o}, not sticky)", fix)


def _empty_or(path: Path, holds: Callable[[Path], bool]) -> bool:
    try:
        with os.scandir(path) as entries:
            if not any(True for _ in entries):
                return True
    except OSError:
        return False
    return holds(path)


def _user(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _refuse(path: Path, why: str, fix: str | None = None) -> None:
    fix = fix or ("remove or move it (or use a folder of your own: folder=, SUPERPARAMS_PROGRESS)")
    msg = (
        f"{os.fspath(path)!r} {why}; superparams never uses a results folder another user "
        f"could change: {fix}, then run again"
    )
    raise StoreError(msg)
