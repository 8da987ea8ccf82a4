"""A setting's folder of its own, ``work/<id>/`` in the results folder, for checkpoints.

``self.workdir`` is made on first use and kept across attempts and resumes; ``self.resumed``
says whether it held something when the setting first looked (what an earlier attempt
left). A run that starts a setting fresh (``--fresh``, a rerun of an outdated setting)
removes its folder just before the setting is handed to the engine (:func:`empty`), so
``run()`` finds it empty, and a run killed midway has removed only the folders of the
settings it started again.

The engine gets the space as :class:`Rooted`: each setting it takes carries where the
folders are. A worker on another machine, where the results folder does not exist, uses
a folder of its own machine instead (:func:`local_root`). Outside a run (``space[0].run()``)
a setting's folder is the one its class's default results folder gives.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from superparams._store._layout import WORK
from superparams.errors import StoreWriteError

if TYPE_CHECKING:
    from superparams._experiment import Experiment
    from superparams._space import Space


# Where a setting carries its folders' root (set by Rooted) and its Workdir, once found.
_ROOT = "_sp_workroot"
_FOUND = "_sp_workdir"


class Rooted:
    """The space an engine runs: each setting taken from it knows where its folder is.

    It stands for the space in every other way (``experiment_class``, ``len``), and
    pickles as the space and the root's path.
    """

    def __init__(self, space: Space[Any], root: str) -> None:
        self.space, self.root = space, root

    def __getitem__(self, position: int) -> Any:
        setting = self.space[position]
        setting.__dict__[_ROOT] = self.root
        return setting

    def __len__(self) -> int:
        return len(self.space)

    def pinned(self, values: dict[str, Any]) -> Rooted:
        """This space with ``values`` set on its fields (a proposal of an adaptive
        search), its settings' folders where this one's are."""
        from superparams._space import pinned

        return Rooted(pinned(self.space, values), self.root)

    def __reduce__(self) -> tuple[type[Rooted], tuple[Space[Any], str]]:
        # Said outright: before 3.11, pickle asks for __getstate__, which __getattr__
        # would answer with the space's own, and the copy would lose `space` and `root`.
        return Rooted, (self.space, self.root)

    def __getattr__(self, name: str) -> Any:
        if name in ("space", "root"):  # not set yet: while unpickling
            raise AttributeError(name)
        return getattr(self.space, name)


def rooted(space: Space[Any], folder: Path) -> Space[Any]:
    """``space`` as the engine gets it, its settings' folders under ``folder/work``."""
    return cast("Space[Any]", Rooted(space, str(folder / WORK)))  # one in every way used


class Workdir:
    """One setting's folder: where it is, and whether it held something at first look."""

    __slots__ = ("path", "resumed")

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with os.scandir(path) as entries:
                self.resumed = any(True for _ in entries)
        except OSError:  # not there yet (or not a folder: made() says so)
            self.resumed = False

    def made(self) -> Path:
        """The folder, made (and its parents) if it is not there."""
        path = self.path
        if path.is_symlink() or path.parent.is_symlink():
            msg = (
                f"{path if path.is_symlink() else path.parent} is a symbolic link; a "
                "setting's folder is never used through one: remove it, then run again"
            )
            raise StoreWriteError(msg)
        from superparams._store._location import make_folders, trust

        trust(path, path.parent.parent)  # work/<id>, work/ and the results folder
        if not path.is_dir():
            make_folders(path)
        return path


def of(setting: Experiment) -> Workdir:
    """A setting's :class:`Workdir`, found once per setting (made on first use)."""
    found: Workdir | None = setting.__dict__.get(_FOUND)
    if found is None:
        root = setting.__dict__.get(_ROOT)
        if root is None:  # outside a run: where a run to the default folder keeps it
            from superparams._store._location import location

            root = str(Path(location(type(setting))[0]).absolute() / WORK)
        found = setting.__dict__[_FOUND] = Workdir(local_root(root) / setting.id)
    return found


@functools.lru_cache(maxsize=8)
def local_root(root: str) -> Path:
    """``root`` if its results folder is on this machine, else a folder named after it in
    this user's private folder of this machine's temporary folder (a worker elsewhere,
    with no shared file system).

    Raises:
        StoreError: that private folder is not this user's alone.
    """
    path = Path(root)
    if path.parent.is_dir():
        return path
    import hashlib

    name = hashlib.sha256(root.encode()).hexdigest()[:16]
    return private() / name


def private() -> Path:
    """``superparams-work-<uid>`` in the temporary folder: made by this user, mode 0700,
    and refused if another user made it or could enter it (the name can be guessed).

    Raises:
        StoreError: it is not a folder of this user's alone.
    """
    import stat
    import tempfile

    from superparams.errors import StoreError

    uid = os.geteuid()
    path = Path(tempfile.gettempdir()) / f"superparams-work-{uid}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    found = os.lstat(path)
    if (
        not stat.S_ISDIR(found.st_mode)
        or found.st_uid != uid
        or stat.S_IMODE(found.st_mode) & 0o077
    ):
        kind = "a folder" if stat.S_ISDIR(found.st_mode) else "not a folder"
        msg = (
            f"{os.fspath(path)!r} is {kind} of uid {found.st_uid}, mode "
            f"{stat.S_IMODE(found.st_mode):o}, not a folder of yours alone (mode 700); "
            "superparams keeps settings' folders there on a machine without the results "
            "folder: remove it, then run again"
        )
        raise StoreError(msg)
    return path


def empty(folder: Path, setting_id: str) -> None:
    """Remove a setting's folder, so its next run starts in an empty one.

    The folder is first renamed aside (at once, whatever its size), then removed: a
    setting never finds half of an old folder.

    Raises:
        StoreWriteError: it could not be moved aside.
    """
    path = folder / WORK / setting_id
    if not os.path.lexists(path):
        return
    aside = path.with_name(f".removed-{setting_id}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(path, aside)
    except OSError as error:
        why = error.strerror or str(error)
        msg = (
            f"could not remove {path} for a fresh start: {why}; remove it yourself, then run again"
        )
        raise StoreWriteError(msg) from None
    import shutil

    if aside.is_symlink():
        aside.unlink()
    else:
        shutil.rmtree(aside, ignore_errors=True)


def count(folder: Path) -> int:
    """How many settings have a folder of their own in the results folder ``folder``."""
    with contextlib.suppress(OSError), os.scandir(folder / WORK) as entries:
        return sum(1 for e in entries if not e.name.startswith("."))
    return 0
