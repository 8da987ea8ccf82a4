"""The adaptive search beside Optuna's own ask-and-tell loop, in the same run.

    python benchmarks/bench_search.py                 # Branin and Hartmann-6, budget 40
    python benchmarks/bench_search.py --budget 60 --sampler-seeds 0 1 2 3

For each test function (noise added per seed, each configuration run on 3 seeds) and each
sampler seed, ``Experiment.optimize(..., sampler="tpe", seed=s)`` and a plain Optuna loop
that asks, evaluates the same function's mean over the same 3 seeds, and tells: the best
mean each reaches, how far that is from the known optimum, and the time per proposal of
each (the search's includes running every setting in a worker process and storing it).
Uninterrupted, with one worker, the two propose the same points, so their best means
agree; the figures say whether they do, and what the search's bookkeeping costs.

Each side also runs with three times the budget: the difference, per extra proposal, is
what one more proposal costs once the search has started (its worker process and its
store are made once per search), beside what it costs the loop.

Machines are noisy: every figure is printed beside its baseline from the same run, with
the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

FUNCTIONS = """
import math
import random

from superparams import Experiment, seeds, uniform

# Hartmann-6: its minimum is -3.32237 at (0.20169, 0.150011, 0.476874, 0.275332,
# 0.311652, 0.6573).
_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
      [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
      [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
_ALPHA = [1.0, 1.2, 3.0, 3.2]


def branin(x1, x2):
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def hartmann6(*x):
    total = 0.0
    for i in range(4):
        inner = sum(_A[i][j] * (x[j] - _P[i][j] / 1e4) ** 2 for j in range(6))
        total -= _ALPHA[i] * math.exp(-inner)
    return total


def noise(seed, *x):
    return random.Random(repr((seed, x))).gauss(0, NOISE)


NOISE = 0.05


class Branin(Experiment):
    x1: float = uniform(-5, 10)
    x2: float = uniform(0, 15)
    seed: int = seeds(3)

    def run(self):
        return {"f": branin(self.x1, self.x2) + noise(self.seed, self.x1, self.x2)}


class Hartmann(Experiment):
    x1: float = uniform(0, 1)
    x2: float = uniform(0, 1)
    x3: float = uniform(0, 1)
    x4: float = uniform(0, 1)
    x5: float = uniform(0, 1)
    x6: float = uniform(0, 1)
    seed: int = seeds(3)

    def run(self):
        x = (self.x1, self.x2, self.x3, self.x4, self.x5, self.x6)
        return {"f": hartmann6(*x) + noise(self.seed, *x)}
"""

CASE = """
import json, sys, tempfile, time
sys.path.insert(0, {folder!r})
import optuna
from functions import Branin, Hartmann, branin, hartmann6, noise
optuna.logging.set_verbosity(optuna.logging.WARNING)

name, budget, seed, side = {name!r}, {budget}, {seed}, {side!r}
cls, f, dims = {{
    "branin": (Branin, branin, [("x1", -5, 10), ("x2", 0, 15)]),
    "hartmann6": (Hartmann, hartmann6, [("x%d" % k, 0, 1) for k in range(1, 7)]),
}}[name]
start = time.perf_counter()
if side == "superparams":
    history = cls().optimize(
        "f", mode="min", budget=budget, sampler="tpe", seed=seed,
        folder=tempfile.mkdtemp(), display=False,
    )
    means = history["f_mean"].to_list()
else:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    space = {{d: optuna.distributions.FloatDistribution(lo, hi) for d, lo, hi in dims}}
    means = []
    for _ in range(budget):
        trial = study.ask(space)
        x = [trial.params[d] for d, _, _ in dims]
        mean = sum(f(*x) + noise(s, *x) for s in range(3)) / 3
        study.tell(trial, mean)
        means.append(mean)
print(json.dumps({{"best": min(means), "seconds": time.perf_counter() - start}}))
"""

OPTIMUM = {"branin": 0.397887, "hartmann6": -3.32237}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--sampler-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    (folder / "functions.py").write_text(textwrap.dedent(FUNCTIONS))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"budget {args.budget} configurations x 3 seeds, TPE, one worker; times per proposal")
    print(
        f"{'function':10} {'seed':>4} {'best (search)':>14} {'best (optuna)':>14} "
        f"{'optimum':>9} {'ms/proposal (search)':>21} {'ms/proposal (optuna)':>21} "
        f"{'ms/extra (search)':>20} {'ms/extra (optuna)':>20}"
    )
    for name in OPTIMUM:
        overheads = []
        for seed in args.sampler_seeds:
            got = {}
            for budget in (args.budget, 3 * args.budget):
                for side in ("optuna", "superparams"):  # interleaved, one after the other
                    code = CASE.format(
                        folder=str(folder), name=name, budget=budget, seed=seed, side=side
                    )
                    done = subprocess.run(
                        [sys.executable, "-c", code], capture_output=True, text=True, check=True
                    )
                    got[side, budget] = json.loads(done.stdout.strip().splitlines()[-1])
            search, loop = got["superparams", args.budget], got["optuna", args.budget]
            per = 1000 * search["seconds"] / args.budget
            base = 1000 * loop["seconds"] / args.budget
            extra = 2 * args.budget
            more = 1000 * (got["superparams", 3 * args.budget]["seconds"] - search["seconds"])
            more_loop = 1000 * (got["optuna", 3 * args.budget]["seconds"] - loop["seconds"])
            overheads.append((more - more_loop) / extra)
            print(
                f"{name:10} {seed:>4} {search['best']:>14.5f} {loop['best']:>14.5f} "
                f"{OPTIMUM[name]:>9.5f} {per:>21.1f} {base:>21.1f} "
                f"{more / extra:>20.1f} {more_loop / extra:>20.1f}"
            )
        print(
            f"{name}: median cost of one more proposal beyond the loop's: "
            f"{statistics.median(overheads):.1f} ms (storing 3 settings, running them in "
            "the search's worker)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
