"""The quick start's second half: three learning rates, three seeds each, then a summary.

From the folder above this one::

    experiment train.Train --num_proc 2
    experiment results train.Train --over seed --sort -acc
    experiment plot train.Train --x lr --y acc --out acc.png
"""

import random

from superparams import Experiment, search, seeds


class Train(Experiment):
    lr: float = search(0.1, 0.01, 0.001)
    seed: int = seeds(3)

    def run(self) -> dict:
        noise = random.Random(self.id).uniform(-0.01, 0.01)
        return {"acc": round(0.99 - abs(0.01 - self.lr) + noise, 4)}
