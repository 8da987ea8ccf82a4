"""Experiment files the tests write into a temporary project (in-process tests and the
end-to-end ones alike), and how they run them.

Each source is named for what it does; the class inside keeps a short name (``Flaky``).
"""

from __future__ import annotations

from pathlib import Path

# A setting runs in the command's own process, or in one of two worker processes.
MODES = {"in-process": ("--engine", "inline"), "workers": ("-j", "2")}

# Fails its second setting on the first try only (marks/ remembers the try): for
# --rerun-failed and --retries.
FLAKY = """
from pathlib import Path
from superparams import Experiment, search

MARKS = Path(__file__).with_name("marks")

class Flaky(Experiment):
    n: int = search(1, 2, 3)

    def run(self):
        MARKS.mkdir(exist_ok=True)
        mark = MARKS / str(self.n)
        print(f"setting n={self.n}")
        if self.n == 2 and not mark.exists():
            mark.write_text("failed once")
            raise RuntimeError("the first try fails")
        return {"double": 2 * self.n}
"""

# A setting fails while experiments/fail.txt lists its n ("2"); each call of run() adds
# its n to experiments/runs.txt (read it with ran()).
FAILS_WHEN_LISTED = """
from pathlib import Path
from superparams import Experiment, search

HERE = Path(__file__).parent

class Flaky(Experiment):
    n: int = search(1, 2, 3)

    def run(self):
        with open(HERE / "runs.txt", "a") as runs:
            runs.write(f"{self.n}\\n")
        failing = HERE / "fail.txt"
        if failing.exists() and str(self.n) in failing.read_text().split():
            raise ValueError(f"n={self.n} is not allowed")
        return {"double": 2 * self.n, "name": f"run-{self.n}"}
"""


def ran(experiments: Path) -> list[int]:
    """The ``n`` of each call of FAILS_WHEN_LISTED's run() in ``experiments``, in order."""
    runs = experiments / "runs.txt"
    return [int(n) for n in runs.read_text().split()] if runs.exists() else []


def clear_runs(experiments: Path) -> None:
    """Forget the calls :func:`ran` counts."""
    (experiments / "runs.txt").unlink(missing_ok=True)


# Each setting reports one row per epoch; its accuracy climbs to 0.85.
EPOCHS = """
from superparams import Experiment, search

class Epochs(Experiment):
    n: int = search(1)

    def run(self):
        return [{"epoch": e, "val_acc": acc} for e, acc in enumerate([0.24, 0.6, 0.85])]
"""

# Three settings that say which worker ran them and how many workers there were.
RANKS = """
import os
from superparams import Experiment, search

class Ranks(Experiment):
    n: int = search(1, 2, 3)

    def run(self):
        return {"rank": self.rank, "n_proc": self.n_proc, "pid": os.getpid()}
"""

# A random search: lr is drawn from a distribution, so the space has no list of settings.
RANDOM = """
from superparams import Experiment, loguniform, search

class Random(Experiment):
    lr: float = loguniform(1e-4, 1e-1)
    layers: int = search(1, 2)

    def run(self):
        return {"score": self.lr * self.layers}
"""

# The contract's experiment, and the field's value in it that notes each unpickling
# of it as a line of unpickled.txt (what crosses to workers, and how often).
from superparams.executors._contract import BIG as BIG  # noqa: E402
from superparams.executors._contract import WORK as WORK  # noqa: E402
