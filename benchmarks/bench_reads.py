"""How quickly the read commands answer for an experiment whose import is slow.

    python benchmarks/bench_reads.py              # 7 interleaved rounds
    python benchmarks/bench_reads.py --rounds 15 --settings 4000

The experiment imports a heavy stack (scikit-learn, SciPy and pandas: about 2 s here),
as a deep-learning experiment imports torch, and has ``--settings`` stored settings (each
with a row per epoch, ``--epochs`` of them). Each round starts, in fresh processes and in turn:

* the floor: ``python -c 'import polars as pl; pl.read_parquet(...)'`` on its
  results.parquet, and the same writing the table as JSON to stdout (what
  ``results --json`` does besides reading);
* ``experiment status X`` and ``experiment results X`` with the record of the class the
  run kept (``class.json``): no import;
* the same without it (the file moved aside): the module is imported, as before.

It prints the median wall time of each over the rounds, and each read's ratio to the
floor of the same rounds (the target is at most 1.2x with the record), with the
machine's load average before and after. ``results`` without ``--json`` writes every row
as aligned text: with many rows that writing, not the read, is most of its time.
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

EXPERIMENT = """
import sklearn.ensemble  # the slow import a real experiment pays (torch, say)
import scipy.optimize
import pandas
from superparams import Experiment, search, seeds

class Train(Experiment):
    lr: float = search(*[10 ** (-k / 20) for k in range({lrs})])
    width: int = search(16, 32, 64, 128, 256)
    dropout: float = search(0.0, 0.5)
    seed: int = seeds(4)
    epochs: int = {epochs}

    def run(self):
        return [
            {{"epoch": e, "loss": self.lr / (1 + e) + self.seed, "acc": 1 - self.lr / (1 + e)}}
            for e in range(self.epochs)
        ]
"""

# Measured as users run it: with bytecode caching (containers and CI often turn it off).
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE",)}
ENV.pop("SUPERPARAMS_PROGRESS", None)


def wall(command: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--settings", type=int, default=4000, help="about this many")
    parser.add_argument("--epochs", type=int, default=25, help="rows per setting")
    options = parser.parse_args()
    lrs = max(1, options.settings // 40)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "train.py").write_text(
            textwrap.dedent(EXPERIMENT.format(lrs=lrs, epochs=options.epochs))
        )
        # saved a minute ago, as a file is before it is run: a file saved after its run
        # started is not trusted to be the code that run loaded (the record is not used)
        earlier = time.time() - 60
        os.utime(root / "train.py", (earlier, earlier))
        run = [str(COMMAND), "train.Train", "--num_proc", "2", "--quiet"]
        done = subprocess.run(run, cwd=root, env=ENV, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(done.stderr)
        store = root / "progress/train/Train"
        record, aside = store / "class.json", root / "class.json"
        assert record.is_file(), "the run kept no class.json"
        parquet = store / "results.parquet"
        floor = [sys.executable, "-c", f"import polars as pl; pl.read_parquet({str(parquet)!r})"]
        as_json = f"import polars as pl; print(pl.read_parquet({str(parquet)!r}).write_json())"
        cases = {
            "polars read_parquet (floor)": (floor, True),
            "polars read + write_json": ([sys.executable, "-c", as_json], True),
            "status, from the record": ([str(COMMAND), "status", "train.Train"], True),
            "results, from the record": ([str(COMMAND), "results", "train.Train"], True),
            "results --json, from the record": (
                [str(COMMAND), "results", "train.Train", "--json"],
                True,
            ),
            "status, importing": ([str(COMMAND), "status", "train.Train"], False),
            "results, importing": ([str(COMMAND), "results", "train.Train"], False),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for command, _ in cases.values():  # warm the caches once
            wall(command, root)
        for _ in range(options.rounds):
            for name, (command, recorded) in cases.items():
                if not recorded:
                    record.rename(aside)
                try:
                    times[name].append(wall(command, root))
                finally:
                    if not recorded:
                        aside.rename(record)
        import polars as pl

        rows = pl.read_parquet(parquet).height
        print(f"{rows} rows, {parquet.stat().st_size / 1e6:.1f} MB; {options.rounds} rounds")
        base = statistics.median(times["polars read_parquet (floor)"])
        for name, taken in times.items():
            median = statistics.median(taken)
            print(f"{name:<34} {median:6.3f} s  {median / base:5.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
