"""What the end-to-end tests of a run from the outside share: the results as the command
prints them, a project with one experiment file, and commands started in the background."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import COMMAND, environment, experiment, with_group_killed, write


def stored(cwd: Path, name: str, *fields: str) -> pl.DataFrame:
    """The results as `experiment results --json` gives them."""
    done = experiment("results", name, *fields, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def project(tmp_path: Path, module: str, source: str) -> Path:
    write(tmp_path / f"experiments/{module}.py", source)
    return tmp_path


@pytest.fixture
def start():
    """Start the command in a session of its own, with more environment; whatever is
    still running at the end of the test is killed."""
    children: list[subprocess.Popen[str]] = []

    def launch(cwd: Path, *args: str, **env: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [str(COMMAND), *args],
            cwd=cwd,
            env={**environment(), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        children.append(child)
        return child

    yield launch
    for child in children:
        if child.poll() is None:
            with_group_killed(child)
        child.communicate()
