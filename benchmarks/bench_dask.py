"""The Dask engine's cost per setting beside bare Dask, and a big base on its workers.

    python benchmarks/bench_dask.py                   # both cases
    python benchmarks/bench_dask.py --settings 1000 --megabytes 400 --repeat 3

Both cases run on one local cluster of 2 single-thread worker processes
(``LocalCluster``), made once, which the engine reaches by its address, as a user's
cluster:

* trivial: N settings that return a dict, through ``run_all(engine="dask")`` (results
  stored, as a user runs them), beside two floors of the same function on the same
  cluster in the same go: a bare ``client.submit`` loop of all N with
  ``as_completed``, and the same loop keeping only 2 in flight, as the engine does.
  Printed: wall times, per-setting times, and the ratios.
* big data: 8 settings whose experiment holds a 400 MB numpy array. Each unpickling
  of the array on a worker notes that worker's pid; printed: how many times each
  worker unpickled it (target: once per worker that ran a setting), and the wall time
  beside the same run with a tiny array.

Machines are noisy: every figure is printed beside its baseline from the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TRIVIAL = """
from superparams import Experiment, search

class Trivial(Experiment):
    x: int = search(*range({n}))

    def run(self) -> dict:
        return {{"y": self.x * 2}}
"""


def bare(x: int) -> dict[str, int]:
    """The trivial setting's work, for the floors (from __main__: Dask sends it by value)."""
    return {"y": x * 2}


BIG = """
import os
import numpy as np
from superparams import Experiment, search

COUNT = {count!r}


class Array:
    \"\"\"A numpy array that notes, in COUNT, each process that unpickles it.\"\"\"

    def __init__(self, elements):
        self.values = np.arange(elements, dtype=np.float64)

    def __superparams_id__(self):
        return f"array-{{self.values.size}}"

    def __getstate__(self):
        return self.values

    def __setstate__(self, values):
        self.values = values
        with open(COUNT, "a") as f:
            f.write(f"{{os.getpid()}}\\n")


class Big(Experiment):
    data: Array = Array({elements})
    seed: int = search(*range(8))

    def run(self) -> dict:
        return {{"total": float(self.data.values[:: 1_000_000].sum()), "pid": os.getpid()}}
"""


def module(root: Path, name: str, source: str) -> object:
    """Write ``source`` as module ``name`` in ``root`` and import it (workers get it by
    value: it is not on their path)."""
    import importlib

    (root / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def best(runs: list[float]) -> str:
    return f"{min(runs):6.2f} s (median {statistics.median(runs):.2f})"


def trivial(root: Path, client: object, address: str, n: int, repeat: int) -> None:
    from distributed import as_completed

    print(f"\n## {n:,} trivial settings, 2 single-thread Dask workers (best of {repeat})")
    code = module(root, "trivial_dask", TRIVIAL.format(n=n))
    floors_all, floors_two, ours = [], [], []
    for k in range(repeat):
        start = time.perf_counter()
        futures = [client.submit(bare, x, pure=False) for x in range(n)]  # type: ignore[attr-defined]
        results = [f.result() for f in as_completed(futures)]
        floors_all.append(time.perf_counter() - start)
        assert len(results) == n

        start = time.perf_counter()
        pending = iter(range(n))
        flight = as_completed([client.submit(bare, next(pending), pure=False) for _ in range(2)])  # type: ignore[attr-defined]
        done = 0
        for future in flight:
            future.result()
            done += 1
            x = next(pending, None)
            if x is not None:
                flight.add(client.submit(bare, x, pure=False))  # type: ignore[attr-defined]
        floors_two.append(time.perf_counter() - start)
        assert done == n

        start = time.perf_counter()
        frame = code.Trivial().run_all(  # type: ignore[attr-defined]
            engine="dask",
            engine_options={"address": address},
            folder=root / f"trivial{k}",
            display=False,
        )
        ours.append(time.perf_counter() - start)
        assert frame["status"].to_list() == ["completed"] * n, frame
    floor = min(floors_all)
    two = min(floors_two)
    per = 1e3 / n
    print(
        f"client.submit, all {n:,} at once   {best(floors_all)}   "
        f"{floor * per:5.2f} ms a setting   1.0x"
    )
    print(
        f"client.submit, 2 in flight       {best(floors_two)}   {two * per:5.2f} ms a setting"
        f"   {two / floor:4.1f}x"
    )
    print(
        f"run_all(engine='dask')           {best(ours)}   {min(ours) * per:5.2f} ms a setting"
        f"   {min(ours) / floor:4.1f}x   ({min(ours) / two:.1f}x the 2-in-flight loop)"
    )


def big_data(root: Path, address: str, megabytes: int) -> None:
    elements = megabytes * 1024 * 1024 // 8
    print(f"\n## 8 settings sharing a {megabytes} MB array, 2 single-thread Dask workers")
    times = {}
    for label, size in (("tiny array", 8), (f"{megabytes} MB array", elements)):
        count = root / f"unpickled-{size}.txt"
        code = module(root, f"big_dask_{size}", BIG.format(count=str(count), elements=size))
        start = time.perf_counter()
        frame = code.Big().run_all(  # type: ignore[attr-defined]
            engine="dask",
            engine_options={"address": address},
            folder=root / f"big{size}",
            display=False,
        )
        times[label] = time.perf_counter() - start
        assert frame["status"].to_list() == ["completed"] * 8, frame
        loads = count.read_text().split() if count.exists() else []
        workers = sorted(set(frame["pid"]))
        per_worker = {pid: loads.count(str(pid)) for pid in workers}
        others = len(loads) - sum(per_worker.values())
        print(
            f"{label:<14} {times[label]:6.2f} s   settings ran on {len(workers)} workers; "
            f"unpickled per worker: {sorted(per_worker.values())}"
            + (f", elsewhere: {others}" if others else "")
            + "   target: 1 each"
        )
        del code, frame
    tiny, big = times["tiny array"], times[f"{megabytes} MB array"]
    print(f"extra time for the big array       {big - tiny:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", type=int, default=1000)
    parser.add_argument("--megabytes", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["trivial", "big"])
    args = parser.parse_args()
    import dask
    from distributed import Client, LocalCluster

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, dask {dask.__version__}")
    with (
        tempfile.TemporaryDirectory(prefix="superparams-bench-dask-") as tmp,
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        root = Path(tmp)
        if args.only in (None, "trivial"):
            trivial(root, client, cluster.scheduler_address, args.settings, args.repeat)
        if args.only in (None, "big"):
            big_data(root, cluster.scheduler_address, args.megabytes)


if __name__ == "__main__":
    main()
