"""How fast a 10^6-setting space answers, beside hand-written baselines timed in the same run.

    python benchmarks/bench_space.py

Each line shows superparams' time per operation, the baseline's, and their ratio. A
baseline is what a user would write without superparams: a plain dataclass and
``itertools.product``, decoding an index by hand, hashing ``asdict`` for an id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
import timeit
from collections.abc import Callable
from dataclasses import dataclass

from superparams import Experiment, search

A, B, C = tuple(range(100)), tuple(range(100)), tuple(range(100))


class Space(Experiment):
    a: int = search(*A)
    b: int = search(*B)
    c: int = search(*C)


@dataclass
class Plain:
    a: int
    b: int
    c: int


def best(operation: Callable[[], object], number: int) -> float:
    """Seconds per call: the best of five runs of ``number`` calls."""
    return min(timeit.repeat(operation, number=number, repeat=5)) / number


def main() -> None:
    space = Space()
    assert len(space) == 1_000_000
    rng = random.Random(0)
    indices = [rng.randrange(1_000_000) for _ in range(1000)]
    cycle = itertools.cycle(indices)

    def plain_at(i: int) -> Plain:
        return Plain(A[i // 10_000], B[i // 100 % 100], C[i % 100])

    def plain_id(p: Plain) -> str:
        text = json.dumps(dataclasses.asdict(p), sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    rows = [
        ("make the space, len()", lambda: len(Space()), lambda: len(A) * len(B) * len(C), 200),
        ("len(space)", lambda: len(space), lambda: len(A) * len(B) * len(C), 10_000),
        ("space[0]", lambda: space[0], lambda: Plain(*next(itertools.product(A, B, C))), 10_000),
        ("space[i], random i", lambda: space[next(cycle)], lambda: plain_at(next(cycle)), 10_000),
        (
            "space[i].id, random i",
            lambda: space[next(cycle)].id,
            lambda: plain_id(plain_at(next(cycle))),
            10_000,
        ),
        (
            "first 10^4 settings, iterated",
            lambda: list(itertools.islice(space, 10_000)),
            lambda: [Plain(*v) for v in itertools.islice(itertools.product(A, B, C), 10_000)],
            5,
        ),
        (
            "sample(1000, seed)",
            lambda: list(space.sample(1000, seed=1)),
            lambda: [plain_at(i) for i in random.Random(1).sample(range(1_000_000), 1000)],
            5,
        ),
    ]
    print(f"space of {len(space):,} settings (100 x 100 x 100)")
    print(f"{'operation':<32}{'superparams':>14}{'baseline':>14}{'ratio':>9}")
    for name, ours, baseline, number in rows:
        t_ours, t_base = best(ours, number), best(baseline, number)
        print(f"{name:<32}{t_ours * 1e6:>11.2f} µs{t_base * 1e6:>11.2f} µs{t_ours / t_base:>8.1f}x")


if __name__ == "__main__":
    main()
