"""How quickly the experiment command answers, and starts the first setting.

    python benchmarks/bench_cli.py            # 7 repetitions of each case
    python benchmarks/bench_cli.py --repeat 15

Cases, each the median wall time over the repetitions, beside floors from the same go:

* ``experiment --help``: from exec to exit. Floors: ``python -c pass`` and
  ``python -c "import superparams"``.
* command to first setting: from just before the command is started to the moment the
  first setting's ``run()`` begins (it writes ``time.time()`` to a file), for a first
  run (nothing stored) and a resumed one (results stored, so polars reads them), with
  1 and 2 worker processes, without a terminal (plain lines) and in a terminal (the
  live view, through a pseudo-terminal). Floor: ``python -c "import polars"``, which
  every run pays before its first setting.
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

COMMAND = Path(sys.executable).with_name("experiment")

STAMP = """
import os, time
from pathlib import Path
from superparams import Experiment, search

class Stamp(Experiment):
    n: int = search(*range(4))
    round: int = 0

    def run(self):
        path = Path(os.environ["STAMPS"]) / f"{{self.round}}-{{self.n}}"
        path.write_text(repr(time.time()))
        return {{"n": self.n}}
"""


# Measured as users run it: with bytecode caching (containers and CI often turn it off).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(command: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - began


def first_setting(args: list[str], cwd: Path, stamps: Path, *, terminal: bool) -> float:
    """Seconds from starting the command to the first setting's run() beginning."""
    for old in stamps.iterdir():
        old.unlink()
    env = dict(ENV, STAMPS=str(stamps))
    began = time.time()
    if terminal:
        import pexpect

        child = pexpect.spawn(
            str(COMMAND), args, cwd=str(cwd), env=env, encoding="utf-8", timeout=120
        )
        child.expect(pexpect.EOF)
        child.close()
    else:
        subprocess.run([str(COMMAND), *args], cwd=cwd, env=env, check=False, capture_output=True)
    times = [float(p.read_text()) for p in stamps.iterdir()]
    return min(times) - began


def median(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "experiments").mkdir()
        (root / "experiments/stamp.py").write_text(textwrap.dedent(STAMP.format()))
        stamps = root / "stamps"
        stamps.mkdir()

        print(f"{'case':<52} median of {repeat}")
        floors = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import superparams'": [sys.executable, "-c", "import superparams"],
            "python -c 'import polars'": [sys.executable, "-c", "import polars"],
        }
        for name, command in floors.items():
            times = [wall(command, root) for _ in range(repeat)]
            print(f"  floor: {name:<44} {median(times)}")
        help_times = [wall([str(COMMAND), "--help"], root) for _ in range(repeat)]
        print(f"  {'experiment --help':<51} {median(help_times)}")
        help_times = [wall([str(COMMAND), "stamp.Stamp", "--help"], root) for _ in range(repeat)]
        print(f"  {'experiment stamp.Stamp --help':<51} {median(help_times)}")

        rounds = iter(range(1_000_000))
        for terminal in (False, True):
            where = "terminal" if terminal else "no terminal"
            for num_proc in (1, 2):
                first, resumed = [], []
                for _ in range(repeat):
                    # a new round: new settings, so nothing of it is stored yet
                    args = ["stamp.Stamp", "-j", str(num_proc), "--round", str(next(rounds))]
                    args.append("--yes")
                    first.append(first_setting(args, root, stamps, terminal=terminal))
                    # the same round again with one more setting: the rest is stored
                    more = [*args, "--n", "0,1,2,3,4"]
                    resumed.append(first_setting(more, root, stamps, terminal=terminal))
                label = f"to first setting, -j {num_proc}, {where}"
                print(f"  {label + ', first run':<51} {median(first)}")
                print(f"  {label + ', resumed':<51} {median(resumed)}")


if __name__ == "__main__":
    main()
