"""The Slurm engine beside submitit's own bare loop of the same trivial work, in one go.

    SLURM_CONF=... python benchmarks/bench_slurm.py [--settings 20] [-j 2]

Needs a Slurm cluster that answers sbatch (``.ci/slurm_up.sh FOLDER`` starts one) and
submitit (in the ``dev`` extra). Cases, each the wall time of the whole thing:

* superparams: ``experiment bench.Trivial --engine slurm -j J``, N settings that return a
  dict, as one array of at most J at once; and the time from the command to the first
  setting running (its run() notes the clock).
* floor: ``submitit.AutoExecutor`` mapping the same function over N values as one array
  (``map_array``, ``slurm_array_parallelism`` J), then every result read.

Per-setting overhead is (superparams - floor) / N. Machines and clusters are noisy:
read the figures beside each other, not alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = """
import time
from pathlib import Path
from superparams import Experiment, search

FIRST = Path(__file__).with_name("first.txt")

class Trivial(Experiment):
    n: int = search(*range({settings}))

    def run(self):
        with open(FIRST, "a") as f:
            f.write(f"{{time.time()}}\\n")
        return {{"square": self.n * self.n}}
"""


def trivial(n: int) -> dict[str, int]:
    return {"square": n * n}


def ours(settings: int, jobs: int) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    (root / "experiments").mkdir()
    (root / "experiments/bench.py").write_text(SOURCE.format(settings=settings))
    command = Path(sys.executable).with_name("experiment")
    began = time.time()
    subprocess.run(
        [str(command), "bench.Trivial", "--engine", "slurm", "-j", str(jobs), "-q"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    took = time.time() - began
    first = min(float(t) for t in (root / "experiments/first.txt").read_text().split())
    return took, first - began


def floor(settings: int, jobs: int) -> float:
    import submitit

    folder = tempfile.mkdtemp(prefix="bench-submitit-")
    began = time.time()
    executor = submitit.AutoExecutor(folder=folder)
    executor.update_parameters(slurm_array_parallelism=jobs, timeout_min=10)
    done = executor.map_array(trivial, list(range(settings)))
    results = [job.result() for job in done]
    assert len(results) == settings
    return time.time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=int, default=20)
    parser.add_argument("-j", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("SLURM_CONF") and not Path("/etc/slurm/slurm.conf").exists():
        sys.exit("no Slurm: set SLURM_CONF (see .ci/slurm_up.sh)")
    for round_ in range(args.repeat):
        base = floor(args.settings, args.j)
        took, first = ours(args.settings, args.j)
        print(
            f"round {round_ + 1}: {args.settings} settings, -j {args.j}: superparams "
            f"{took:.1f} s (first setting running {first:.1f} s after the command), "
            f"submitit bare {base:.1f} s; overhead {(took - base) / args.settings * 1000:+.0f} "
            "ms per setting"
        )


if __name__ == "__main__":
    main()
