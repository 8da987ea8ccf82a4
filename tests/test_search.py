"""Adaptive search: proposals from Optuna's samplers, each run on every seed, the store as
the only state."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import optuna
import polars as pl
import pytest

from superparams import Experiment, UsageError, search, seeds, uniform
from superparams.errors import SearchSpaceError, StoreError
from superparams.stopping import threshold

optuna.logging.set_verbosity(optuna.logging.WARNING)


def branin(x1: float, x2: float) -> float:
    """Branin's function: its minimum, 0.397887, is at three points."""
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


class Branin(Experiment):
    x1: float = uniform(-5, 10)
    x2: float = uniform(0, 15)

    def run(self) -> dict:
        return {"f": branin(self.x1, self.x2)}


class Noisy(Experiment):
    """Branin with noise that each seed adds its own way."""

    x1: float = uniform(-5, 10)
    x2: float = uniform(0, 15)
    kind: str = search("plain", "shifted")
    seed: int = seeds(3)

    def run(self) -> dict:
        shift = 5.0 if self.kind == "shifted" else 0.0
        return {"f": branin(self.x1, self.x2) + shift + 0.1 * (self.seed - 1)}


def quiet(tmp_path: Path) -> dict:
    return {"folder": tmp_path, "display": False}


class TestProposals:
    def test_the_same_points_as_optunas_own_loop(self, tmp_path):
        """With one worker and no seeds, TPE proposes exactly what Optuna's ask/tell loop
        proposes with the same seed and budget."""
        history = Branin().optimize("f", mode="min", budget=14, seed=3, **quiet(tmp_path))
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3))
        space = {
            "x1": optuna.distributions.FloatDistribution(-5, 10),
            "x2": optuna.distributions.FloatDistribution(0, 15),
        }
        for _ in range(14):
            trial = study.ask(space)
            study.tell(trial, branin(**trial.params))
        assert history.select("x1", "x2").rows() == [
            (t.params["x1"], t.params["x2"]) for t in study.trials
        ]
        assert history["f_mean"].to_list() == [t.value for t in study.trials]

    def test_each_configuration_runs_on_every_seed(self, tmp_path):
        """A budget of 5 over seeds(3) stores 15 settings; each configuration's mean over
        its seeds is what the sampler is told."""
        history = Noisy().optimize("f", mode="min", budget=5, seed=0, **quiet(tmp_path))
        assert history.height == 5
        assert history["seeds"].to_list() == [3] * 5
        table = Noisy().results(folder=tmp_path)
        assert table.height == 15
        first = table.row(0, named=True)
        assert first["label"] == (
            f"x1={first['x1']},x2={first['x2']},kind={first['kind']},seed=0"
        )  # labels name what the search varies, not only the seed
        per = table.group_by("x1", "x2", "kind", maintain_order=True).agg(
            pl.col("seed").sort(), pl.col("f").mean()
        )
        assert per["seed"].to_list() == [[0, 1, 2]] * 5
        assert per["f"].to_list() == pytest.approx(history["f_mean"].to_list())

    def test_several_in_flight(self, tmp_path):
        """With num_proc=3, proposals go out three at a time; the budget is still exact."""
        history = Noisy().optimize("f", mode="min", budget=7, seed=1, num_proc=3, **quiet(tmp_path))
        assert history.height == 7
        assert Noisy().results(folder=tmp_path).height == 21

    def test_choices_of_any_value(self, tmp_path):
        """A search over values Optuna cannot hold (tuples) is proposed by index."""

        class Shapes(Experiment):
            shape: tuple = search((1, 2), (3, 4), (5, 6))

            def run(self) -> dict:
                return {"area": self.shape[0] * self.shape[1]}

        history = Shapes().optimize("area", budget=4, sampler="random", seed=0, **quiet(tmp_path))
        assert {tuple(s) for s in history["shape"].to_list()} <= {(1, 2), (3, 4), (5, 6)}
        again = Shapes().optimize("area", budget=5, sampler="random", seed=0, **quiet(tmp_path))
        assert again.head(4).equals(history)  # read back from the store by their values


class TestResume:
    def test_a_larger_budget_goes_on_from_the_store(self, tmp_path):
        """A rerun rebuilds the search from what is stored: the first configurations stay,
        only new ones run, and each setting ran once."""
        first = Noisy().optimize("f", mode="min", budget=4, seed=0, **quiet(tmp_path))
        more = Noisy().optimize("f", mode="min", budget=7, seed=0, **quiet(tmp_path))
        assert more.head(4).equals(first)
        table = Noisy().results(folder=tmp_path)
        assert table.height == 21
        assert set(table["attempt"].to_list()) == {1}

    def test_the_same_history_proposes_the_same_next(self, tmp_path):
        """Two resumes of one stored history with one sampler seed propose the same."""
        Noisy().optimize("f", mode="min", budget=4, seed=0, **quiet(tmp_path / "a"))
        import shutil

        shutil.copytree(tmp_path / "a", tmp_path / "b")
        a = Noisy().optimize("f", mode="min", budget=5, seed=0, **quiet(tmp_path / "a"))
        b = Noisy().optimize("f", mode="min", budget=5, seed=0, **quiet(tmp_path / "b"))
        assert a.row(4) == b.row(4)

    def test_cma_es_goes_on_from_its_stored_state(self, tmp_path):
        """A CMA-ES search resumed from the store goes on from the generation and the
        optimizer it had reached, as the uninterrupted search does, rather than start
        its evolution again."""
        pytest.importorskip("cmaes")
        whole = Branin().optimize(
            "f", mode="min", budget=16, sampler="cmaes", seed=0, **quiet(tmp_path / "whole")
        )
        Branin().optimize("f", mode="min", budget=8, sampler="cmaes", seed=0, **quiet(tmp_path))
        split = Branin().optimize(
            "f", mode="min", budget=16, sampler="cmaes", seed=0, **quiet(tmp_path)
        )
        assert split.height == whole.height == 16

        def generations(folder: Path) -> list[int]:
            states = [
                json.loads(line) for line in (folder / "study.jsonl").read_text().splitlines()
            ]
            return [s["state"].get("cma:generation", -1) for s in states]

        assert generations(tmp_path) == generations(tmp_path / "whole")
        assert max(generations(tmp_path)) >= 2  # past the first population, resumed or not

    def test_a_sampler_state_another_user_owns_is_not_read(self, tmp_path):
        """The stored sampler state may hold a pickle: a file of another user's is refused,
        naming it, before anything is loaded or run."""
        pytest.importorskip("cmaes")
        if os.geteuid() != 0:
            if os.environ.get("CI") == "true":
                pytest.fail("CI runs as root: the file must be given to another user")
            pytest.skip("giving a file to another user needs root")
        Branin().optimize("f", mode="min", budget=8, sampler="cmaes", seed=0, **quiet(tmp_path))
        os.chown(tmp_path / "study.jsonl", 65534, 65534)
        before = Branin().results(folder=tmp_path).height
        with pytest.raises(StoreError, match=r"study\.jsonl belongs to another user"):
            Branin().optimize("f", mode="min", budget=9, sampler="cmaes", seed=0, **quiet(tmp_path))
        assert Branin().results(folder=tmp_path).height == before

    def test_a_configuration_cut_short_is_completed_first(self, tmp_path):
        """Seeds of a stored configuration still to run are run before any new proposal."""
        Noisy().optimize("f", mode="min", budget=2, seed=0, **quiet(tmp_path))
        last = Noisy().results(folder=tmp_path).row(-1, named=True)
        partial = Noisy(x1=last["x1"] + 1e-3, x2=last["x2"], kind=last["kind"], seed=0)
        partial.run_all(**quiet(tmp_path))  # one seed of a third configuration
        history = Noisy().optimize("f", mode="min", budget=3, seed=0, **quiet(tmp_path))
        assert history.height == 3
        assert history["seeds"].to_list() == [3, 3, 3]
        assert Noisy().results(folder=tmp_path).height == 9


class TestOutcomes:
    def test_failed_and_pruned_configurations(self, tmp_path):
        """A seed that raises fails its configuration; a stop rule prunes it; the search
        goes on to its budget."""

        class Picky(Experiment):
            x: float = uniform(0, 1)
            seed: int = seeds(2)

            def run(self):
                if self.x > 0.8:
                    raise ValueError("too far")
                self.report(step=1, loss=self.x)
                return {"loss": self.x}

        history = Picky().optimize(
            "loss",
            mode="min",
            budget=12,
            sampler="random",
            seed=4,
            stop=threshold("loss", above=0.6),
            **quiet(tmp_path),
        )
        states = dict(zip(history["x"].to_list(), history["state"].to_list(), strict=True))
        assert {s for x, s in states.items() if x > 0.8} <= {"fail"}
        assert {s for x, s in states.items() if 0.6 < x <= 0.8} <= {"pruned"}
        assert {s for x, s in states.items() if x <= 0.6} <= {"complete"}
        assert len(set(states.values())) == 3

    def test_several_metrics(self, tmp_path):
        """Two metrics with a mode each make a multi-objective search."""

        class Two(Experiment):
            x: float = uniform(0, 1)

            def run(self) -> dict:
                return {"acc": self.x, "latency": self.x**2}

        history = Two().optimize(
            ["acc", "latency"], mode=["max", "min"], budget=6, seed=0, **quiet(tmp_path)
        )
        assert history.columns[-3:] == ["acc_mean", "latency_mean", "seeds"]
        assert history.height == 6


class TestBadInput:
    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"budget": 0}, "budget=0 is not a number of configurations; give a whole number >= 1"),
            (
                {"budget": 3, "mode": "best"},
                "mode=['best'] does not give 'max' or 'min' for each of f; "
                "e.g. mode='max', or mode=['max', 'min'] for two metrics",
            ),
            (
                {"budget": 3, "sampler": "tpee"},
                "sampler='tpee' is not a sampler (did you mean 'tpe'?); give one of tpe, "
                "cmaes, random, gp, or an Optuna sampler object",
            ),
        ],
    )
    def test_is_refused_before_anything_is_written(self, tmp_path, options, message):
        """A budget below 1, an unknown mode or sampler: a usage error, nothing written."""
        with pytest.raises(UsageError) as error:
            Branin().optimize("f", folder=tmp_path / "store", display=False, **options)
        assert str(error.value) == message
        assert not (tmp_path / "store").exists()

    def test_a_sampler_whose_package_is_missing(self, tmp_path):
        """The GP sampler needs torch: without it, one line says what to install."""
        pytest.importorskip("optuna")
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("torch is installed here")
        with pytest.raises(UsageError, match=r"sampler='gp' needs the package 'torch'"):
            Branin().optimize("f", budget=2, sampler="gp", folder=tmp_path, display=False)

    def test_an_unknown_metric_with_a_store(self, tmp_path):
        """A metric no stored setting reports is refused before anything more is written."""
        Branin().optimize("f", budget=2, seed=0, **quiet(tmp_path))
        record = (tmp_path / "record.jsonl").read_bytes()
        with pytest.raises(UsageError, match=r"Branin has no metric 'g' to optimise"):
            Branin().optimize("g", budget=3, seed=0, **quiet(tmp_path))
        assert (tmp_path / "record.jsonl").read_bytes() == record

    def test_a_space_that_varies_nothing(self, tmp_path):
        """A space with every field pinned has nothing to propose."""
        with pytest.raises(SearchSpaceError, match="searches no field"):
            Branin(x1=1.0, x2=2.0).optimize("f", budget=2, folder=tmp_path, display=False)
