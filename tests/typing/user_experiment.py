"""A user's experiment file as type checkers see it; test_types.py checks it, never runs it.

A trailing comment ``revealed`` gives the type a checker must reveal on its line, and
``error`` marks a line that must be an error (with mypy's error code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from superparams import Experiment, columns, derived, search, seeds, uniform

if TYPE_CHECKING:
    from typing_extensions import reveal_type


class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)
    lr: float = search(0.1, 0.01)
    dropout: float = uniform(0.0, 0.5)
    name: str = "adam"
    layers: list[int] = [64, 64]  # noqa: RUF012  # superparams copies it per instance
    total: int = derived(lambda s: s.steps * s.batch_size)
    seed: int = seeds(3)

    def run(self) -> dict[str, int]:
        return {"total samples": self.batch_size * self.steps}


space = Hyperparams()
reveal_type(space.batch_size)  # revealed: int
reveal_type(space.lr)  # revealed: float
reveal_type(space.dropout)  # revealed: float
reveal_type(space.layers)  # revealed: list[int]
reveal_type(space.total)  # revealed: int
reveal_type(Hyperparams(batch_size=search(2, 4, 8)))  # revealed: Hyperparams
reveal_type(Hyperparams(batch_size=64, lr=0.1))  # revealed: Hyperparams
Hyperparams(batch_size="a")  # error: arg-type
Hyperparams(bach_size=8)  # error: call-arg
Hyperparams(64)  # error: call-arg

for h in Hyperparams():
    reveal_type(h)  # revealed: Hyperparams
    reveal_type(h.run())  # revealed: dict[str, int]

reveal_type(space[0])  # revealed: Hyperparams
reveal_type(space[1:])  # revealed: list[Hyperparams]
reveal_type(space[0].id)  # revealed: str
reveal_type(space[0].label)  # revealed: str
reveal_type(space[0].rank)  # revealed: int
reveal_type(len(space))  # revealed: int
reveal_type(space.sample(4, seed=0))  # revealed: Space[Hyperparams]
reveal_type(space | Hyperparams(steps=10))  # revealed: Space[Hyperparams]
reveal_type(space.seed)  # revealed: int
reveal_type(space.summary())  # revealed: DataFrame
reveal_type(space.summary(over="seed", rows="max"))  # revealed: DataFrame
reveal_type(space.best("total samples", mode="min"))  # revealed: DataFrame
reveal_type(columns(space).metrics)  # revealed: tuple[str, ...]
space.best("acc", mode="high")  # error: arg-type

reveal_type(space.run_all(num_proc=2, display=False))  # revealed: DataFrame
reveal_type(space.results())  # revealed: DataFrame
reveal_type(space.plan().new)  # revealed: list[int]
space.run_all(num_procs=2)  # error: call-arg
