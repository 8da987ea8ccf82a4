"""The cost of ``self.report()``: 10,000 reports from one setting, local engine.

    python benchmarks/bench_report.py            # 10,000 reports
    python benchmarks/bench_report.py --n 2000   # fewer

Two runs of the same experiment through the ``experiment`` command (2 worker
processes, one setting that loops ``n`` times), timed as the whole process:

* with reports: each step calls ``self.report(step=i, loss=...)``, which returns once
  the row is synced to the record by the driver;
* without: the same loop, returning the last row only.

The difference divided by ``n`` is the cost of one report (the pipe round trip to the
driver, the line written, and its fsync). Target: under 2 ms per report. The record's
file system sets most of it: the fsync is one per report here, as one setting reports
at a time (settings reporting at once share one).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

LOOP = """
from superparams import Experiment, search

class Loop(Experiment):
    n: int = search({n})
    report_rows: bool = {report}

    def run(self):
        loss = 1.0
        for i in range(self.n):
            loss *= 0.999
            if self.report_rows:
                self.report(step=i, loss=loss)
        return {{"step": self.n, "loss": loss}}
"""


def timed(n: int, report: bool) -> float:
    """Seconds the command takes to run the one setting, start-up included."""
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "experiments"
        folder.mkdir()
        (folder / "loop.py").write_text(textwrap.dedent(LOOP.format(n=n, report=report)))
        command = [str(Path(sys.executable).with_name("experiment")), "loop.Loop", "-j", "2"]
        began = time.perf_counter()
        done = subprocess.run(
            [*command, "--quiet"], cwd=folder, capture_output=True, text=True, check=False
        )
        took = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        rows = subprocess.run(
            [command[0], "results", "loop.Loop", "--json"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        stored = rows.stdout.count('"step"')
        expected = n + 1 if report else 1
        if stored != expected:
            raise SystemExit(f"{stored} rows stored, {expected} expected")
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="reports in the setting")
    args = parser.parse_args()
    without = timed(args.n, report=False)
    with_reports = timed(args.n, report=True)
    per = (with_reports - without) / args.n * 1000
    print(f"without reports: {without:.2f} s")
    print(f"with {args.n:,} reports: {with_reports:.2f} s")
    print(f"per report: {per:.3f} ms (target: under 2 ms)")


if __name__ == "__main__":
    main()
