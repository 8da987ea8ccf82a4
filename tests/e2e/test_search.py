"""The adaptive search from the outside: its standing in `experiment status`, and a search
killed with kill -9 that a rerun takes to exactly its budget."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import environment, experiment, wait_for, write

pytestmark = pytest.mark.slow

QUAD = """
import time

from superparams import Experiment, search, seeds, uniform


class Quad(Experiment):
    x: float = uniform(-5, 5)
    kind: str = search("a", "b")
    seed: int = seeds(2)

    def run(self) -> dict:
        time.sleep(float(__import__("os").environ.get("QUAD_SLEEP", "0")))
        return {"loss": (self.x - 1) ** 2 + (self.kind == "b") + self.seed / 100}
"""


def search(root: Path, budget: int, **env: str) -> subprocess.Popen[str]:
    """A search of Quad from Python, in a process of its own."""
    code = (
        "import sys; sys.path.insert(0, 'experiments')\n"
        "from quad import Quad\n"
        f"Quad().optimize('loss', mode='min', budget={budget}, seed=0, display=False)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=root,
        env=environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers with it, for a kill -9 of them all
    )


class TestStatus:
    def test_status_shows_the_budget_used_and_the_best_so_far(self, tmp_path):
        """After a search, `experiment status` says how much of the budget it used and the
        best configuration so far, on the mean over its seeds."""
        write(tmp_path / "experiments/quad.py", QUAD)
        child = search(tmp_path, 5)
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        status = experiment("status", "quad.Quad", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert "search: 5 of 5 configurations (minimise loss; sampler tpe, seed 0)" in lines
        best = next(line for line in lines if line.startswith("  best so far: loss "))
        assert best.endswith(")")
        assert "over 2 seeds (x=" in best


class TestKilled:
    def test_a_search_killed_mid_run_reaches_exactly_its_budget(self, tmp_path):
        """kill -9 while a search runs, then the same search again: it reaches its budget of
        8 configurations, each on both seeds, and no setting completed twice."""
        write(tmp_path / "experiments/quad.py", QUAD)
        record = tmp_path / "experiments/progress/quad/Quad/record.jsonl"
        child = search(tmp_path, 8, QUAD_SLEEP="0.2")
        wait_for(lambda: record.exists() and record.read_text().count('"outcome"') >= 5, "outcomes")
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
        again = search(tmp_path, 8)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        lines = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        completed = Counter(
            line["id"]
            for line in lines
            if line.get("event") == "outcome" and line.get("status") == "completed"
        )
        assert len(completed) == 16
        assert set(completed.values()) == {1}
        table = pl.read_parquet(record.with_name("results.parquet"))
        assert table.select("x", "kind").unique().height == 8
