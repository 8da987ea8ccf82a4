"""The environment a setting runs in: the Python version, the platform, the versions of
the distributions the experiment imported, and the GPU where the system says which
without a GPU library; and its id, a short hash of all that.

This room owns what is captured and how cheaply (:func:`captured`, once per process,
again only when ``sys.modules`` grew), and the versions installed now
(:func:`installed`), which the store compares with those stored. It imports nothing of
superparams and never imports a library to ask its version.

Which packages count: those the experiment imported, not the tool's own. A worker
process notes what was loaded before the experiment's code came
(:func:`note_machinery`), and counts what came after; where nothing was noted (a
setting run in the driver, with the inline engine), every distribution counts but
superparams and what it requires to run. So a rich or dask upgrade leaves a sweep as
it is, and one of optuna, torch or numpy that the experiment uses does not.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

#: Set (to anything) to capture no environment: for measuring what capturing costs.
OFF = "SUPERPARAMS_NO_ENVIRONMENT"

# The top-level modules loaded before the experiment's code in a worker process: the
# tool's and the engine's (None: nothing was noted, this is the driver).
_MACHINERY: frozenset[str] | None = None
# What the last capture found, and the number of modules loaded then.
_LAST: tuple[int, str, dict[str, Any]] | None = None
# Environment ids this process has sent with their details (see details_to_send).
_SENT: set[str] = set()


def note_machinery() -> None:
    """Note the modules loaded so far as the tool's: called by a worker process before
    it loads the experiment (the base), once; later calls change nothing."""
    global _MACHINERY
    if _MACHINERY is not None:
        return
    loaded = {name.partition(".")[0] for name in sys.modules}
    _MACHINERY = frozenset(loaded | _LOADED_LATER)


# The tool's own modules that a worker may load after the note, counted as loaded
# before it: the base's unpickler (for a base that needs it), an environment's hash.
_LOADED_LATER = frozenset({"cloudpickle", "xxhash"})


def captured(own: str = "") -> tuple[str, dict[str, Any]] | None:
    """This process's environment: its id and its details; None if capturing is off.
    ``own`` names the experiment's module, whose package does not count: its code is
    what the code's version covers.

    Worked out again only when modules were loaded since the last time.
    """
    global _LAST
    count = len(sys.modules)
    last = _LAST
    if last is not None and last[0] == count:
        return last[1], last[2]
    if OFF in os.environ:
        return None
    details = {
        "python": _python(),
        "platform": _platform(),
        "packages": _packages(own.partition(".")[0]),
        **_gpu(),
    }
    found = environment_id(details)
    _LAST = (len(sys.modules), found, details)  # what capturing loaded included
    return found, details


def details_to_send(found: str, details: dict[str, Any]) -> dict[str, Any] | None:
    """``details``, the first time this process sends the environment ``found``; None
    after (the driver keeps what it was sent)."""
    if found in _SENT:
        return None
    _SENT.add(found)
    return details


def forget_sent() -> None:
    """Send the details again: a process that serves another run (a Dask or Ray worker
    whose driver changed) sends them to a driver that has not seen them."""
    _SENT.clear()


def environment_id(details: dict[str, Any]) -> str:
    """A short stable hash of ``details``: 16 hex digits of their canonical JSON."""
    import xxhash

    text = json.dumps(details, sort_keys=True, separators=(",", ":"))
    return xxhash.xxh3_64_hexdigest(text.encode())


def python_version() -> str:
    """This Python's version, as an environment names it (``3.11.7``)."""
    return _python()


def installed(names: list[str]) -> dict[str, str | None]:
    """The version of each distribution installed now, by name (None: not installed);
    read from its metadata, never by importing it."""
    return {name: _version(name) for name in names}


def _python() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def _platform() -> str:
    machine = os.uname().machine if hasattr(os, "uname") else ""
    return f"{sys.platform}-{machine}" if machine else sys.platform


def _packages(own: str) -> dict[str, str]:
    """The distributions whose top-level modules are loaded and count (not ``own``), by
    name, with their versions."""
    machinery = _MACHINERY
    stdlib = sys.stdlib_module_names
    # Top-level modules only; a private one (_yaml, _cffi_backend) comes with the
    # public module of its distribution.
    names = {name.partition(".")[0] for name in list(sys.modules)}
    if machinery is not None:
        names -= machinery
    names = {n for n in names if n[:1] != "_" and n not in stdlib and n != own}
    skip = _tools_own() if machinery is None and names else frozenset()
    found: dict[str, str] = {}
    for name in names:
        for dist, version in _owners(name):
            if dist not in skip:
                found[dist] = version
    return dict(sorted(found.items()))


@functools.cache
def _owners(module: str) -> tuple[tuple[str, str], ...]:
    """The installed distributions that own the top-level ``module``, each with its
    version: the one of the module's own name when it holds it (numpy, torch, optuna),
    else those :func:`importlib.metadata.packages_distributions` names, read only for a
    module that lives beside installed distributions (it scans every one of them, a
    few hundred milliseconds: an experiment's own module never costs that)."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(module)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        dist = None
    if dist is not None and _holds(dist, module):
        return ((_normal(dist.metadata["Name"] or module), dist.version),)
    if not _beside_distributions(module):
        return ()
    out = []
    for name in _all_owners().get(module, ()):
        version = _version(name)
        if version is not None:
            out.append((_normal(name), version))
    return tuple(out)


def _holds(dist: Any, module: str) -> bool:
    """Whether the distribution ``dist`` installed the top-level ``module``."""
    folder = _folder_of(module)
    if folder is not None and os.path.abspath(str(dist.locate_file(""))) == folder:
        return True  # of its name, beside its metadata: not a read of its list of files
    top = dist.read_text("top_level.txt")
    if top:
        return module in top.split()
    files = dist.files
    if files is None:
        return True  # it says nothing of its files: its name is the module's
    for file in files:
        first = file.parts[0] if file.parts else ""
        if first == module or first.partition(".")[0] == module:
            return True
    return False


def _beside_distributions(module: str) -> bool:
    """Whether ``module`` was loaded from a folder that holds installed distributions'
    metadata (site-packages, a ``pip install --target`` folder)."""
    folder = _folder_of(module)
    return folder is not None and _has_metadata(folder)


def _folder_of(module: str) -> str | None:
    """The folder the top-level ``module`` was loaded from (the one on ``sys.path``)."""
    loaded = sys.modules.get(module)
    file = getattr(loaded, "__file__", None)
    if isinstance(file, str) and file:
        folder = os.path.dirname(os.path.abspath(file))
        if os.path.basename(file).startswith("__init__."):
            folder = os.path.dirname(folder)
        return folder
    path = [str(p) for p in getattr(loaded, "__path__", None) or ()]  # a namespace package
    return os.path.dirname(os.path.abspath(path[0])) if path else None


@functools.cache
def _has_metadata(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(e.name.endswith((".dist-info", ".egg-info")) for e in entries)
    except OSError:
        return False


@functools.cache
def _all_owners() -> Mapping[str, list[str]]:
    """Which distributions own each top-level module, every installed one read."""
    import importlib.metadata

    return importlib.metadata.packages_distributions()


@functools.cache
def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _tools_own() -> frozenset[str]:
    """superparams and what it requires to run (no extras), and what those require."""
    import importlib.metadata
    import re

    seen: set[str] = set()
    todo = ["superparams"]
    while todo:
        name = _normal(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra" in requirement.partition(";")[2]:
                continue
            named = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            if named:
                todo.append(named.group(0))
    return frozenset(seen)


def _normal(name: str) -> str:
    """A distribution's name as it is compared (PEP 503): ``Typing_Extensions`` is
    ``typing-extensions``."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _gpu() -> dict[str, Any]:
    """The GPU driver and models, where the NVIDIA driver says them in /proc; nothing
    otherwise (no GPU library is imported to ask)."""
    import glob

    out: dict[str, Any] = {}
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as f:
            line = f.readline().strip()
    except OSError:
        return out
    if line:
        out["gpu_driver"] = line
    models = []
    for path in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for text in f:
                    key, _, value = text.partition(":")
                    if key.strip() == "Model":
                        models.append(value.strip())
        except OSError:
            continue
    if models:
        out["gpus"] = models
    return out
