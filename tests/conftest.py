"""Fixtures and helpers the tests share: a user's project folder in ``tmp_path``, the
installed command, a subscriber that keeps events, a real Jupyter kernel.

A test writes an experiment module into ``<tmp>/experiments/``, imports it the way a
user's script does, and runs it in this process or in a real subprocess. The experiment
sources several test files use are in ``tests/e2e/sources.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# Type checkers read this file (tests/typing/test_types.py); it is never run.
collect_ignore = ["typing/user_experiment.py"]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def environment(**extra: str) -> dict[str, str]:
    """This environment for a user's subprocess, without a stray results folder."""
    env = dict(os.environ)
    env.pop("SUPERPARAMS_PROGRESS", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


#: The installed ``experiment`` command, beside this Python.
COMMAND = Path(sys.executable).with_name("experiment")


def write(path: Path, text: str) -> Path:
    """Write ``text``, dedented, to ``path``, making its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def experiment(
    *args: str, cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed command in ``cwd`` to its end, with no terminal attached (its
    text 120 columns wide); ``env`` goes into its environment."""
    return subprocess.run(
        [str(COMMAND), *args],
        cwd=cwd,
        env=environment(COLUMNS="120", **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class Events:
    """A subscriber that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def workers_of(driver: int) -> list[int]:
    """The pids of live superparams worker processes started by ``driver``: its children
    (on Linux each is the keeper of the process that runs its settings)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if (
            b"superparams.executors._local._process" in argv
            and ppid == str(driver)
            and state != "Z"
        ):
            found.append(int(entry.name))
    return found


class Workspace:
    """A user's project: ``experiments/`` holding experiment files, the cwd at its root."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.experiments = root / "experiments"
        self.experiments.mkdir()
        self._monkeypatch = monkeypatch
        self._loaded: list[str] = []
        self._children: list[subprocess.Popen[str]] = []

    def write(self, name: str, source: str) -> Path:
        """Write ``experiments/<name>.py``."""
        path = self.experiments / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return path

    def load(self, name: str, source: str | None = None) -> ModuleType:
        """Write (if given) and import ``experiments/<name>.py`` afresh, as a script would."""
        if source is not None:
            self.write(name, source)
        if not self._loaded:
            self._monkeypatch.syspath_prepend(str(self.experiments))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        self._loaded.append(name)
        return importlib.import_module(name)

    def folder(self, module: str, cls: str) -> Path:
        """Where ``experiments/<module>.py``'s class ``cls`` keeps its results."""
        return self.experiments / "progress" / module / cls

    def run(
        self, script: str, *args: str, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``experiments/<script>.py`` to its end in a subprocess."""
        return subprocess.run(
            [sys.executable, str(self.experiments / f"{script}.py"), *args],
            cwd=self.root,
            env=environment(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, script: str, *args: str, **env: str) -> subprocess.Popen[str]:
        """Start ``experiments/<script>.py`` in its own session (a process group to kill)."""
        child = subprocess.Popen(
            [sys.executable, str(self.experiments / f"{script}.py"), *args],
            cwd=self.root,
            env=environment(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self._children.append(child)
        return child

    def close(self) -> None:
        for name in self._loaded:
            sys.modules.pop(name, None)
        for child in self._children:
            if child.poll() is None:
                with_group_killed(child)
            child.communicate()


def with_group_killed(child: subprocess.Popen[str]) -> None:
    """kill -9 a child's whole process group, and reap the child."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A fresh project folder as the working directory, with no results folder set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SUPERPARAMS_PROGRESS", raising=False)
    space = Workspace(tmp_path, monkeypatch)
    try:
        yield space
    finally:
        space.close()


@contextlib.contextmanager
def kernel(cwd: Path, kernels: Path, **env: str) -> Iterator[Callable[[str], str]]:
    """A real Jupyter kernel of this Python started in ``cwd``, as a function that runs
    one cell and returns its stdout.

    ``env`` goes into the kernel's environment, as Jupyter gives it (``JPY_SESSION_NAME``:
    the notebook's path). An error in a cell fails the test with its traceback.
    """
    pytest.importorskip("ipykernel")
    manager = pytest.importorskip("jupyter_client.manager")
    kernelspec = pytest.importorskip("jupyter_client.kernelspec")
    import json

    # A kernel of this very Python, whatever kernels the machine has installed.
    spec = kernels / "here"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "here", "language": "python"})
    )
    specs = kernelspec.KernelSpecManager(kernel_dirs=[str(kernels)])
    started = manager.KernelManager(kernel_name="here", kernel_spec_manager=specs)
    started.start_kernel(cwd=str(cwd), env=environment(**env))
    client = started.client()

    def cell(code: str) -> str:
        output: list[str] = []

        def keep(message: dict[str, Any]) -> None:
            if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
                output.append(message["content"]["text"])
            if message["msg_type"] == "error":
                output.append("\n".join(message["content"]["traceback"]))

        reply = client.execute_interactive(code, timeout=60, output_hook=keep)
        assert reply["content"]["status"] == "ok", "".join(output)
        return "".join(output)

    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        yield cell
    finally:
        client.stop_channels()
        started.shutdown_kernel(now=True)


def run_in_kernel(code: str, cwd: Path, kernels: Path, **env: str) -> str:
    """Run ``code`` in a new real Jupyter kernel (see :func:`kernel`); its stdout."""
    with kernel(cwd, kernels, **env) as cell:
        return cell(code)


#: An empty notebook file, as Jupyter saves a new one.
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real two-node Ray cluster in a network namespace with only loopback (see
    tests/ray_cluster.py), shared by the Ray tests and stopped at the end."""
    pytest.importorskip("ray")
    from tests.ray_cluster import start_cluster

    yield from start_cluster(tmp_path_factory.mktemp("ray"))
