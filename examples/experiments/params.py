"""The quick start: two settings of a toy experiment.

From the folder above this one (or from inside it)::

    experiment params.Hyperparams --num_proc 2
"""

from superparams import Experiment, search


class Hyperparams(Experiment):
    steps: int = 100
    batch_size: int = search(16, 32)

    def run(self) -> dict:
        results = {"total samples": self.batch_size * self.steps}
        print(results)
        return results
