"""Whole-process timings of superparams runs beside a floor measured in the same go.

    python benchmarks/bench_runner.py              # every case, 0.1.0 in a temporary venv
    python benchmarks/bench_runner.py --old-venv /path/to/venv-with-superparams-0.1.0
    python benchmarks/bench_runner.py --skip-old   # without the old package

Cases (2 worker processes each, wall time of the whole process, start-up included):

Both superparams and 0.1.0 are run through their ``experiment`` command.

* trivial: 4,000 settings that return a dict. Floor: a bare
  ``concurrent.futures.ProcessPoolExecutor`` mapping the same function. Target: at most
  3x the floor. Also ``superparams==0.1.0`` (its command takes ``--n_proc``).
* big data: 8 settings whose experiment holds a 400 MB numpy array, against the same
  run holding a tiny array. The difference, divided by the time of one pickle round
  trip of the array (measured here), is how many times the array travelled. Target: at
  most 3; and no process above 3x the array's size (peak RSS).
* resume: a 100,000-setting space whose settings are all stored as completed. Target:
  under 2 s from the command to its exit with nothing to do.

Machines are noisy: every figure is printed beside its baseline from the same run.
"""

from __future__ import annotations

import argparse
import os
import pickle
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

FLOOR = """
from concurrent.futures import ProcessPoolExecutor

def run(x):
    return {{"y": x * 2}}

if __name__ == "__main__":
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(run, range({n})))
    assert len(results) == {n}
"""


def experiment_command(target: str) -> list[str]:
    """The `experiment` command of the interpreter running this benchmark."""
    script = Path(sys.executable).with_name("experiment")
    return [str(script), target, "--num_proc", "2", "--quiet"]


BIG = """
import resource
import numpy as np
from superparams import Experiment, search

class Big(Experiment):
    data: np.ndarray = np.arange({elements}, dtype=np.float64)
    seed: int = search(*range(8))

    def run(self) -> dict:
        total = float(self.data[:: 1_000_000].sum())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {{"total": total, "peak_rss": peak}}
"""

BIG_DRIVER = """
import resource, sys
sys.path.insert(0, "experiments")
from big import Big
frame = Big().run_all(num_proc=2, display=False)
assert frame["status"].to_list() == ["completed"] * 8, frame
driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(max(frame["peak_rss"].max(), driver))
"""


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    # Flush what earlier runs wrote first: 0.1.0 writes gigabytes of parquet, and the
    # kernel writing them back would stall the fsyncs of whatever runs next.
    os.sync()
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def best(runs: list[float]) -> str:
    return f"{min(runs):6.2f} s (median {statistics.median(runs):.2f})"


def old_venv(given: str | None, skip: bool) -> Path | None:
    if skip:
        return None
    if given:
        return Path(given)
    venv = Path(tempfile.mkdtemp(prefix="superparams-0.1.0-"))
    print(f"installing superparams==0.1.0 into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "superparams==0.1.0"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return venv


def fresh_project(root: Path, name: str, module: str, source: str) -> Path:
    project = root / name
    (project / "experiments").mkdir(parents=True)
    (project / "experiments" / f"{module}.py").write_text(textwrap.dedent(source))
    return project


def trivial(root: Path, old: Path | None, repeat: int, n: int) -> None:
    print(f"\n## {n:,} trivial settings, 2 processes (whole process, best of {repeat})")
    floor_py = root / "floor.py"
    floor_py.write_text(FLOOR.format(n=n))
    command = experiment_command("trivial.Trivial")
    floors, ours, olds = [], [], []
    for k in range(repeat):
        floors.append(timed([sys.executable, str(floor_py)], root))
        project = fresh_project(root, f"new{k}", "trivial", TRIVIAL.format(n=n))
        ours.append(timed(command, project))
        if old is not None:
            project = fresh_project(root, f"old{k}", "trivial", TRIVIAL.format(n=n))
            old_command = [str(old / "bin" / "experiment"), "trivial.Trivial", "--n_proc", "2"]
            olds.append(timed(old_command, project))
    floor = min(floors)
    print(f"floor (ProcessPoolExecutor)  {best(floors)}   1.0x")
    print(f"superparams                  {best(ours)}   {min(ours) / floor:4.1f}x   target <= 3x")
    if olds:
        print(f"superparams 0.1.0            {best(olds)}   {min(olds) / floor:4.1f}x")


def big_data(root: Path, megabytes: int, repeat: int) -> None:
    import numpy as np

    elements = megabytes * 1024 * 1024 // 8
    print(f"\n## 8 settings sharing a {megabytes} MB array, 2 processes (best of {repeat})")
    runs: dict[str, float] = {}
    peaks = {}
    for attempt in range(repeat):
        for label, size in (("tiny array", 8), (f"{megabytes} MB array", elements)):
            name = f"big{size}-{attempt}"
            project = fresh_project(root, name, "big", BIG.format(elements=size))
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", BIG_DRIVER],
                cwd=project,
                check=True,
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - start
            runs[label] = min(runs.get(label, elapsed), elapsed)
            peaks[label] = max(peaks.get(label, 0), int(out.stdout.strip().splitlines()[-1]))
    # Measured after the runs: Linux hands a process's peak RSS on to its children.
    array = np.arange(elements, dtype=np.float64)
    trips = []
    for _ in range(3):
        start = time.perf_counter()
        pickle.loads(pickle.dumps(array, protocol=5))
        trips.append(time.perf_counter() - start)
    round_trip = min(trips)
    del array
    tiny, big = runs["tiny array"], runs[f"{megabytes} MB array"]
    extra = (big - tiny) / round_trip
    size = elements * 8
    print(f"one pickle round trip of the array   {round_trip:6.2f} s")
    print(f"run with a tiny array                {tiny:6.2f} s")
    print(f"run with the big array               {big:6.2f} s")
    print(f"extra cost in round trips            {extra:6.2f}      target <= 3")
    peak = peaks[f"{megabytes} MB array"]
    print(f"largest process peak RSS             {peak / size:6.2f}x the array   target <= 3x")


def resume(root: Path, n: int, repeat: int) -> None:
    print(f"\n## resuming {n:,} settings, all completed (whole process)")
    project = fresh_project(root, "resume", "trivial", TRIVIAL.format(n=n))
    command = experiment_command("trivial.Trivial")
    fill = timed(command, project)
    print(
        f"first run of all {n:,} settings     {fill:6.2f} s   ({fill / n * 1e6:.0f} us a setting)"
    )
    bare = [timed([sys.executable, "-c", "import superparams, polars"], project)]
    again = []
    for _ in range(repeat):
        bare.append(timed([sys.executable, "-c", "import superparams, polars"], project))
        again.append(timed(command, project))
    print(f"python -c 'import superparams, polars'  {best(bare)}")
    print(f"resume with nothing to do            {best(again)}   target < 2 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-venv", help="a venv with superparams==0.1.0 installed")
    parser.add_argument("--skip-old", action="store_true", help="leave out 0.1.0")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--settings", type=int, default=4000)
    parser.add_argument("--megabytes", type=int, default=400)
    parser.add_argument("--resume-settings", type=int, default=100_000)
    parser.add_argument("--only", choices=["trivial", "big", "resume"])
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="superparams-bench-") as tmp:
        root = Path(tmp)
        if args.only in (None, "trivial"):
            trivial(root, old_venv(args.old_venv, args.skip_old), args.repeat, args.settings)
        if args.only in (None, "big"):
            big_data(root, args.megabytes, args.repeat)
        if args.only in (None, "resume"):
            resume(root, args.resume_settings, args.repeat)


if __name__ == "__main__":
    main()
