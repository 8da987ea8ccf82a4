"""An adaptive search beside a grid: an SVM on scikit-learn's digits, three seeds each.

From the folder above this one (scikit-learn and the search extra installed)::

    experiment tuned.Digits --C 0.1,1,10,100,1000 --gamma 1e-4,3e-4,1e-3,3e-3,0.01,0.03 -j 2
    experiment results tuned.Digits --over seed --sort -acc
    experiment tuned.Digits --optimize acc --budget 30 --sample-seed 0 -j 2

The grid tries 30 configurations on 3 seeds; the search proposes its own 30, each on the
same 3 seeds, from what the ones before it scored. Both store in the same folder, so give
the search a folder of its own (SUPERPARAMS_PROGRESS) to compare them, or let it start
from what the grid found: a stored configuration counts in the search's history.
"""

from superparams import Experiment, loguniform, seeds


class Digits(Experiment):
    C: float = loguniform(0.1, 1000.0)
    gamma: float = loguniform(1e-4, 0.1)
    seed: int = seeds(3)  # the split of the data: each configuration on three of them

    def run(self) -> dict:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.svm import SVC

        x, y = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(
            x / 16, y, test_size=0.5, random_state=self.seed, stratify=y
        )
        model = SVC(C=self.C, gamma=self.gamma).fit(x_train, y_train)
        return {"acc": model.score(x_test, y_test)}
