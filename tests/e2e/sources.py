"""Experiment files the end-to-end tests write into a temporary project."""

# Fails its second setting on the first try only: for --rerun-failed and --retries.
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
