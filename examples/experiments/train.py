"""The quick start's second half: three learning rates, three seeds each, then a summary.

From the folder above this one::

    experiment train.Train --num_proc 2
    experiment results train.Train --over seed --sort -acc
    experiment plot train.Train --x lr --y acc --out acc.png
    experiment plot train.Train --x epoch --y acc --hue lr --out curves.png
"""

import random

from superparams import Experiment, search, seeds

EPOCHS = 5


class Train(Experiment):
    lr: float = search(0.1, 0.01, 0.001)
    seed: int = seeds(3)

    def run(self) -> None:
        noise = random.Random(self.id).uniform(-0.01, 0.01)
        final = round(0.99 - abs(0.01 - self.lr) + noise, 4)
        for epoch in range(1, EPOCHS + 1):  # "training": one stored row per epoch
            self.report(epoch=epoch, acc=round(final * epoch / EPOCHS, 4))
