"""The driver's memory and time on a large space, beside a floor measured in the same go.

    python benchmarks/bench_driver.py                    # 200,000 settings
    python benchmarks/bench_driver.py --settings 100000

Case (2 worker processes, wall time of the whole process, start-up included):

* many trivial settings: ``run_all(num_proc=2)`` of a space of 200,000 settings that
  return a dict. Floor: a bare ``concurrent.futures.ProcessPoolExecutor(2).map`` of the
  same function (its default chunksize). Each runs in a fresh process, which reports its
  own peak RSS (``ru_maxrss``: the driver alone, not its workers). Targets: the driver's
  peak below 250 MB, and the run within 1.5x the floor.

The driver may hold every result at the end (the returned frame, the parquet); while
settings run, what it holds should grow with what is in flight, not with the space.
Machines are noisy: every figure is printed beside its baseline from the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TRIVIAL = """
from dataclasses import dataclass
from superparams import Experiment, search

@dataclass
class Trivial(Experiment):
    x: int = search(*range({n}))

    def run(self) -> dict:
        return {{"y": self.x * 2}}
"""

DRIVER = """
import resource, sys
sys.path.insert(0, "experiments")
from trivial import Trivial
frame = Trivial().run_all(num_proc=2, display=False)
assert frame.height == {n} and frame["status"].to_list().count("completed") == {n}
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

FLOOR = """
import resource
from concurrent.futures import ProcessPoolExecutor

def run(x):
    return {{"y": x * 2}}

if __name__ == "__main__":
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(run, range({n})))
    assert len(results) == {n}
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def measured(command: list[str], cwd: Path) -> tuple[float, int]:
    """Wall time of a fresh process, and the peak RSS it reports on its last line."""
    os.sync()  # what an earlier run wrote must not stall this one's fsyncs
    start = time.perf_counter()
    out = subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return elapsed, int(out.stdout.strip().splitlines()[-1])


def best(runs: list[float]) -> str:
    return f"{min(runs):6.2f} s (median {statistics.median(runs):.2f})"


def many(root: Path, n: int, repeat: int) -> None:
    print(f"\n## {n:,} trivial settings, 2 processes (whole process, best of {repeat})")
    floor_py = root / "floor.py"
    floor_py.write_text(FLOOR.format(n=n))
    floors, ours = [], []
    floor_peak = our_peak = 0
    for k in range(repeat):
        elapsed, peak = measured([sys.executable, str(floor_py)], root)
        floors.append(elapsed)
        floor_peak = max(floor_peak, peak)
        project = root / f"run{k}"
        (project / "experiments").mkdir(parents=True)
        (project / "experiments" / "trivial.py").write_text(textwrap.dedent(TRIVIAL.format(n=n)))
        elapsed, peak = measured([sys.executable, "-c", DRIVER.format(n=n)], project)
        ours.append(elapsed)
        our_peak = max(our_peak, peak)
    floor = min(floors)
    mb = 1024 * 1024
    print(
        f"floor (ProcessPoolExecutor.map)  {best(floors)}   1.0x    peak {floor_peak / mb:5.0f} MB"
    )
    print(
        f"superparams run_all              {best(ours)}   {min(ours) / floor:4.2f}x   "
        f"peak {our_peak / mb:5.0f} MB"
    )
    print(f"targets: run <= 1.5x the floor, driver peak < 250 MB ({our_peak / n:.0f} B a setting)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="superparams-bench-") as tmp:
        many(Path(tmp), args.settings, args.repeat)


if __name__ == "__main__":
    main()
