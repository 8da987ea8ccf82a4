"""What the Ray engine costs: per setting, beside Ray's own bare loop, and at start-up.

    python benchmarks/bench_ray.py                 # 400 settings, 3 repetitions
    python benchmarks/bench_ray.py -n 1000 --repeat 5

Cases, each beside a floor measured in the same go:

* per setting: N trivial settings through ``run_all(engine="ray")`` on a Ray of 2 CPUs
  that this process started, against the same trivial function as a bare ``ray.remote``
  loop on that same Ray: all N submitted at once (Ray's best), and 2 in flight at a
  time (what a run keeps in flight on 2 CPUs). The difference over N is the engine's
  own cost per setting: the store, the task, the output capture.
* command to first setting: from just before ``experiment stamp.Stamp --engine ray`` is
  started to the first setting's ``run()`` beginning, with no address (a local Ray made
  for the run) and with the address of a running cluster (``ray start --head``). Floor:
  ``python -c "import ray; ray.init(); ray.get(f.remote())"``, bare Ray's own start-up
  to a first task.

As root, the whole benchmark runs in a network namespace with only loopback (Ray
listens on every interface otherwise), and every Ray process it started ends with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

COMMAND = Path(sys.executable).with_name("experiment")
RAY = Path(sys.executable).with_name("ray")
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}

TRIVIAL = """
from superparams import Experiment, search

class Trivial(Experiment):
    x: int = search(*range({n}))

    def run(self):
        return {{"y": self.x * 2}}
"""

STAMP = """
import time
from pathlib import Path
from superparams import Experiment, search

STAMPS = Path(__file__).with_name("stamps")

class Stamp(Experiment):
    n: int = search(*range(4))
    round: int = 0

    def run(self):
        (STAMPS / f"{self.round}-{self.n}").write_text(repr(time.time()))
        return {"n": self.n}
"""

BARE_START = """
import ray, sys, time
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

@ray.remote
def f():
    return time.time()

print(ray.get(f.remote()))
ray.shutdown()
"""


def per_setting(root: Path, n: int, repeat: int) -> None:
    import ray

    print(f"\n## {n:,} trivial settings on a Ray of 2 CPUs (best of {repeat})")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    @ray.remote(max_retries=0)
    def work(x: int) -> dict[str, int]:
        return {"y": x * 2}

    ray.get([work.remote(x) for x in range(20)])  # workers warm, as they are for a run

    def all_at_once() -> None:
        assert len(ray.get([work.remote(x) for x in range(n)])) == n

    def two_in_flight() -> None:
        pending = [work.remote(0), work.remote(1)]
        for x in range(2, n + 2):
            done, pending = ray.wait(pending, num_returns=1)
            ray.get(done)
            if x < n:
                pending.append(work.remote(x))

    sys.path.insert(0, str(root / "experiments"))
    import trivial  # type: ignore[import-not-found]

    runs = iter(range(1_000_000))

    def through_the_engine() -> None:  # a new results folder each time
        folder = root / f"run{next(runs)}"
        frame = trivial.Trivial().run_all(engine="ray", folder=folder, display=False)
        assert frame["status"].to_list() == ["completed"] * n

    times: dict[str, list[float]] = {}
    for _ in range(repeat):
        for name, case in [
            ("bare ray.remote, all at once", all_at_once),
            ("bare ray.remote, 2 in flight", two_in_flight),
            ('run_all(engine="ray")', through_the_engine),
        ]:
            began = time.perf_counter()
            case()
            times.setdefault(name, []).append(time.perf_counter() - began)
    ray.shutdown()
    floor = min(times["bare ray.remote, 2 in flight"])
    for name, values in times.items():
        each = min(values) / n * 1000
        print(f"  {name:<32} {min(values):6.2f} s   {each:6.3f} ms a setting")
    ours = min(times['run_all(engine="ray")'])
    print(f"  the engine's own cost: {(ours - floor) / n * 1000:.3f} ms a setting over 2 in flight")


def first_setting(args: list[str], project: Path, round_: int) -> float:
    stamps = project / "experiments/stamps"
    for old in stamps.iterdir():
        old.unlink()
    began = time.time()
    subprocess.run(
        [str(COMMAND), "stamp.Stamp", "--engine", "ray", "--round", str(round_), *args],
        cwd=project,
        env=ENV,
        check=True,
        capture_output=True,
    )
    return min(float(p.read_text()) for p in stamps.iterdir()) - began


def start_up(root: Path, repeat: int) -> None:
    print(f"\n## command to first setting running (median of {repeat})")
    project = root / "stamp"
    (project / "experiments/stamps").mkdir(parents=True)
    (project / "experiments/stamp.py").write_text(textwrap.dedent(STAMP))
    bare = []
    for _ in range(repeat):
        began = time.time()
        out = subprocess.run(
            [sys.executable, "-c", BARE_START], env=ENV, check=True, capture_output=True, text=True
        ).stdout
        bare.append(float(out.split()[-1]) - began)
    print(f"  floor: bare ray.init() + first task         {statistics.median(bare):6.2f} s")
    rounds = iter(range(1_000_000))
    local = [first_setting(["-j", "2"], project, next(rounds)) for _ in range(repeat)]
    print(f"  experiment --engine ray (a local Ray)       {statistics.median(local):6.2f} s")
    sessions = tempfile.mkdtemp(prefix="sp-ray-")
    node = ["--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--disable-usage-stats"]
    subprocess.run(
        [str(RAY), "start", "--head", "--port", "6380", "--temp-dir", sessions, *node],
        env=ENV,
        check=True,
        capture_output=True,
    )
    try:
        address = ["--engine-option", "address=127.0.0.1:6380"]
        cluster = [first_setting(address, project, next(rounds)) for _ in range(repeat)]
        median = statistics.median(cluster)
        print(f"  experiment --engine ray, a cluster's address {median:6.2f} s")
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=ENV, capture_output=True)
        shutil.rmtree(sessions, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400, help="settings per run")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    if os.geteuid() == 0 and "SUPERPARAMS_BENCH_INSIDE" not in os.environ:
        # Once more, inside a namespace of its own: only loopback, its own processes.
        inside = f"ip link set lo up && exec {sys.executable} {' '.join(sys.argv)}"
        command = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]
        env = {**os.environ, "SUPERPARAMS_BENCH_INSIDE": "1"}
        sys.exit(subprocess.run([*command, "sh", "-c", inside], env=env).returncode)
    os.environ.update(ENV)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "experiments").mkdir()
        (root / "experiments/trivial.py").write_text(textwrap.dedent(TRIVIAL.format(n=options.n)))
        start_up(root, options.repeat)
        per_setting(root, options.n, options.repeat)


if __name__ == "__main__":
    main()
