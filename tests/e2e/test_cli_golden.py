"""The exact words of the command's help and errors, kept in tests/golden/.

A change to any of them shows here as a diff. When the change is meant, regenerate::

    SUPERPARAMS_UPDATE_GOLDEN=1 pytest tests/e2e/test_cli_golden.py

and read the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

COMMAND = Path(sys.executable).with_name("experiment")
GOLDEN = Path(__file__).parents[1] / "golden"

PARAMS = """
from superparams import Experiment, search

class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)

    def run(self) -> dict:
        return {"total samples": self.batch_size * self.steps}
"""

TRAIN = '''
import enum
from pathlib import Path
from typing import Literal, Optional
from superparams import Experiment, derived, loguniform, search

class Optimizer(enum.Enum):
    ADAM = "adam"
    SGD = "sgd"

class Train(Experiment):
    """Train a small model on one split of the data."""

    data: Path
    lr: float = search(0.1, 0.01, 0.001)
    layers: list[int] = [64, 64]
    optimizer: Optimizer = Optimizer.ADAM
    schedule: Literal["cosine", "step"] = "cosine"
    warmup: Optional[int] = None
    noise: float = loguniform(1e-4, 1e-1)
    fast: bool = False
    tag: str = "baseline"
    steps: int = derived(lambda s: 1000 if s.fast else 10_000)

    def run(self):
        return {}
'''

ERRORS = [
    ["params.Hyperparams", "--bach_size", "8"],
    ["params.Hyperparams", "--batch_size", "big"],
    ["params.Hyperparams", "--batch_size", "16,x"],
    ["params.Hyperparams", "--steps"],
    ["params.Hyperparams", "--num_porc", "2"],
    ["params.Hyperparams", "-j", "2.5"],
    ["params.Hyperparams", "--timeout", "soon"],
    ["params.Hyperparams", "--csv"],
    ["params.Hyperparams", "16"],
    ["params.Hyperparams", "--fresh", "--rerun-failed"],
    ["--steps", "3", "params.Hyperparams"],
    ["parms.Hyperparams"],
    ["params.Hyperparam"],
    ["nothing_here"],
    ["status"],
    ["status", "--csv"],
    ["clean", "params.Hyperparams", "--steps", "3"],
    ["clean", "params.Hyperparams"],
    ["train.Train"],
    ["train.Train", "--data", "d.csv"],
    ["train.Train", "--data", "d.csv", "--sample", "2", "--optimizer", "adamw"],
    ["train.Train", "--data", "d.csv", "--sample", "2", "--schedule", "cosin"],
    ["train.Train", "--data", "d.csv", "--sample", "2", "--layers", "64,64"],
    ["train.Train", "--data", "d.csv", "--sample", "2", "--warmup", "soon"],
    ["train.Train", "--data", "d.csv", "--sample", "2", "--steps", "5"],
    ["train.Train", "--data", "d.csv", "--sample", "2", "--fast", "maybe"],
    ["train.Train", "--data", "d.csv", "--seed", "2"],
]


def check(name: str, text: str) -> None:
    """Compare with the golden file, or write it when regenerating on purpose."""
    path = GOLDEN / name
    if os.environ.get("SUPERPARAMS_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no {path}; write it with SUPERPARAMS_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("SUPERPARAMS_PROGRESS", None)
    return subprocess.run(
        [str(COMMAND), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments/params.py").write_text(textwrap.dedent(PARAMS))
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN))
    return tmp_path


def test_help(project):
    """`experiment --help`."""
    done = run("--help", cwd=project)
    assert done.returncode == 0
    check("help.txt", done.stdout)


def test_an_experiments_help(project):
    """`experiment EXPERIMENT --help`: fields with types, defaults and searched values."""
    texts = []
    for name in ("params.Hyperparams", "train.Train"):
        done = run(name, "--help", cwd=project)
        assert done.returncode == 0
        texts.append(f"$ experiment {name} --help\n{done.stdout}")
    check("help_experiment.txt", "\n".join(texts))


def test_the_commands_help(project):
    """`experiment status|results|logs|clean --help`."""
    texts = []
    for command in ("status", "results", "plot", "report", "view", "logs", "clean"):
        done = run(command, "--help", cwd=project)
        assert done.returncode == 0
        texts.append(f"$ experiment {command} --help\n{done.stdout}")
    done = run("results", "params.Hyperparams", "--help", cwd=project)
    texts.append(f"$ experiment results params.Hyperparams --help\n{done.stdout}")
    check("help_commands.txt", "\n".join(texts))


def test_usage_errors(project):
    """Each usage error: its exact line and exit code, and nothing written."""
    texts = []
    for args in ERRORS:
        done = run(*args, cwd=project)
        texts.append(f"$ experiment {' '.join(args)}\n{done.stderr}[exit {done.returncode}]\n")
        assert done.stdout == "", args
        assert "Traceback" not in done.stderr, args
        assert len(done.stderr.splitlines()) == 1, args
    check("errors.txt", "\n".join(texts))
    assert not (project / "experiments/progress").exists()
    assert not (project / "progress").exists()
