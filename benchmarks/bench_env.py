"""What capturing each setting's environment costs a run, against the same run with the
capture turned off, measured in the same go.

    python benchmarks/bench_env.py                # 4,000 settings, 9 rounds
    python benchmarks/bench_env.py --settings 1000 --rounds 3

Cases (2 worker processes, wall time of the whole ``experiment`` command, start-up
included; and the CPU time of all its processes, which the load of other work on the
machine disturbs less), each run with the capture and with
``SUPERPARAMS_NO_ENVIRONMENT=1``, the two alternating so that the machine's load falls
on both alike:

* trivial: 4,000 settings that return a dict and import nothing. Target: at most 2%
  added.
* imports numpy: the same, the experiment importing numpy, so each worker names a
  distribution (looked up once per process).

Machines are noisy: the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIVIAL = """
from superparams import Experiment, search
{imports}

class Trivial(Experiment):
    x: int = search(*range({n}))

    def run(self) -> dict:
        return {{"y": self.x * 2}}
"""


def timed(folder: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of one run of the experiment in ``folder`` from nothing stored, and
    the CPU seconds of all its processes (workers included: each is waited for)."""
    command = [str(Path(sys.executable).with_name("experiment")), "trivial", "-j", "2"]
    shutil.rmtree(folder / "progress", ignore_errors=True)  # each run from nothing
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [*command, "--quiet"],
        cwd=folder,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def case(name: str, imports: str, settings: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp:
        folder = Path(tmp)
        (folder / "trivial.py").write_text(TRIVIAL.format(imports=imports, n=settings))
        on = {**os.environ}
        on.pop(_OFF, None)
        off = {**on, _OFF: "1"}
        timed(folder, on)  # warm the page cache and the folder
        with_capture, without = [], []
        for _ in range(rounds):
            with_capture.append(timed(folder, on))
            without.append(timed(folder, off))
        print(f"{name}: {settings:,} settings, {rounds} rounds each")
        for what, index in (("wall", 0), ("CPU, all processes", 1)):
            yes = [run[index] for run in with_capture]
            no = [run[index] for run in without]
            print(f"  {what}")
            print(f"    capture on   {min(yes):6.2f} s (median {statistics.median(yes):.2f})")
            print(f"    capture off  {min(no):6.2f} s (median {statistics.median(no):.2f})")
            print(
                f"    added: {100 * (min(yes) / min(no) - 1):+.1f}% (best), "
                f"{100 * (statistics.median(yes) / statistics.median(no) - 1):+.1f}% "
                "(median); target <= 2%"
            )


_OFF = "SUPERPARAMS_NO_ENVIRONMENT"

PARTS = """
import sys, time
from superparams import _environment as env
env.note_machinery()  # as a worker does before loading the experiment
{imports}
start = time.perf_counter()
env.captured("trivial")
first = time.perf_counter() - start
n = 200_000
start = time.perf_counter()
for _ in range(n):
    env.captured("trivial")
print(first * 1e3, (time.perf_counter() - start) / n * 1e9)
"""


def parts(name: str, imports: str) -> None:
    """What the capture costs a worker process, apart: the first time, and each
    setting after it (nothing new loaded)."""
    done = subprocess.run(
        [sys.executable, "-c", PARTS.format(imports=imports)],
        capture_output=True,
        text=True,
        check=True,
    )
    first, each = (float(v) for v in done.stdout.split())
    print(f"  in one worker ({name}): first capture {first:.2f} ms, then {each:.0f} ns a setting")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    case("trivial", "", args.settings, args.rounds)
    parts("trivial", "")
    case("imports numpy", "import numpy", args.settings, args.rounds)
    parts("imports numpy", "import numpy")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
