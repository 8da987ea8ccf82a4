"""After the run, through the real ``experiment`` command: summaries over seeds, plots.

``experiment results X --over seed`` prints each metric as ``mean ± std (n=N)`` and exports
the numbers as separate columns; ``--where`` filters by an SQL condition, never Python;
``experiment plot`` writes PNG, SVG, PDF or a self-contained HTML page.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import experiment, write

ACC = {
    (0.1, 16): [0.91, 0.93, 0.92],
    (0.1, 32): [0.90, 0.88, 0.95],
    (0.01, 16): [0.99, 0.985, 0.992],
    (0.01, 32): [0.97, 0.975, 0.96],
}

TRAIN = f"""
from superparams import Experiment, search, seeds

ACC = {ACC!r}

class Train(Experiment):
    lr: float = search(0.1, 0.01)
    batch_size: int = search(16, 32)
    opt: str = search("adam", "sgd")
    seed: int = seeds(3)

    def run(self):
        acc = ACC[(self.lr, self.batch_size)][self.seed] - (0.001 if self.opt == "sgd" else 0)
        return [
            {{"epoch": e, "acc": round(acc - (2 - e) * 0.05, 6), "f1": round(acc / 2, 6)}}
            for e in range(3)
        ]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder where train.Train has run, every setting completed."""
    root = tmp_path_factory.mktemp("analysis")
    write(root / "train.py", TRAIN)
    done = experiment("train.Train", "-q", "-j", "2", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def hand(lr, batch_size, opt="adam"):
    """The mean and sample std of a setting's last-epoch acc over its three seeds."""
    values = [a - (0.001 if opt == "sgd" else 0) for a in ACC[(lr, batch_size)]]
    return statistics.mean(values), statistics.stdev(values)


class TestResultsOverSeeds:
    def test_cells_are_mean_std_and_n_as_computed_by_hand(self, project):
        """--over seed prints one row per other setting, acc as `mean ± std (n=3)`."""
        done = experiment("results", "train.Train", "--over", "seed", "--opt", "adam", cwd=project)
        assert done.returncode == 0, done.stderr
        mean, std = hand(0.01, 16)
        assert f"{mean:.4g} ± {std:.2g} (n=3)" in done.stdout
        lines = done.stdout.splitlines()
        assert lines[0].split()[:3] == ["lr", "batch_size", "epoch"]
        assert len(lines) == 2 + 4

    def test_sort_by_a_metric_sorts_by_its_mean(self, project):
        """--sort -acc puts the best mean first, not the best seed."""
        done = experiment(
            "results",
            "train.Train",
            "--over",
            "seed",
            "--sort",
            "-acc",
            "--opt",
            "adam",
            cwd=project,
        )
        assert done.returncode == 0, done.stderr
        *lines, judged = done.stdout.splitlines()[2:]
        rows = [line.split()[:2] for line in lines]
        assert judged.startswith("best acc: lr=0.01,batch_size=16, ")  # its verdict follows
        by_mean = sorted(ACC, key=lambda k: -statistics.mean(ACC[k]))
        assert rows == [[str(lr), str(bs)] for lr, bs in by_mean]

    def test_where_filters_on_the_mean_and_columns_picks_metrics(self, project):
        """--where 'acc > 0.95' keeps the settings whose mean is above; --columns picks acc."""
        done = experiment(
            "results",
            "train.Train",
            "--over",
            "seed",
            "--where",
            "acc > 0.95 AND opt = 'adam'",
            "--columns",
            "acc",
            cwd=project,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].split() == ["lr", "batch_size", "opt", "acc"]
        assert [line.split()[:2] for line in lines[2:]] == [["0.01", "16"], ["0.01", "32"]]

    def test_csv_has_the_numbers_as_separate_columns(self, project):
        """--csv with --over writes acc_mean, acc_std, acc_sem and acc_n, as computed by hand."""
        done = experiment(
            "results", "train.Train", "--over", "seed", "--csv", "--columns", "acc", cwd=project
        )
        assert done.returncode == 0, done.stderr
        table = pl.read_csv(io.StringIO(done.stdout))
        assert table.columns == [
            "lr",
            "batch_size",
            "opt",
            "acc_mean",
            "acc_std",
            "acc_sem",
            "acc_n",
            "acc_ci_low",
            "acc_ci_high",
            "left_out",
            "outdated",
        ]
        row = table.filter(
            (pl.col("lr") == 0.1) & (pl.col("batch_size") == 32) & (pl.col("opt") == "sgd")
        ).row(0, named=True)
        mean, std = hand(0.1, 32, "sgd")
        assert row["acc_mean"] == pytest.approx(mean)
        assert row["acc_std"] == pytest.approx(std)
        assert row["acc_sem"] == pytest.approx(std / 3**0.5)
        assert row["acc_n"] == 3

    def test_json_with_where(self, project):
        """--json with --over and --where holds the rows the condition keeps."""
        done = experiment(
            "results",
            "train.Train",
            "--over",
            "seed",
            "--json",
            "--where",
            "lr = 0.01",
            cwd=project,
        )
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)["rows"]
        assert {r["lr"] for r in rows} == {0.01}
        assert len(rows) == 4

    def test_last_keeps_the_last_row_of_each_setting(self, project):
        """--last shows one row per setting, its last epoch."""
        done = experiment("results", "train.Train", "--last", "--csv", cwd=project)
        assert done.returncode == 0, done.stderr
        table = pl.read_csv(io.StringIO(done.stdout))
        assert table.height == 24
        assert set(table["epoch"]) == {2}

    def test_where_on_raw_rows(self, project):
        """--where without --over filters the stored rows."""
        done = experiment(
            "results", "train.Train", "--where", "epoch = 0 AND seed = 1", "--csv", cwd=project
        )
        assert done.returncode == 0, done.stderr
        table = pl.read_csv(io.StringIO(done.stdout))
        assert table.height == 8
        assert set(table["seed"]) == {1}


class TestResultsMistakes:
    @pytest.mark.parametrize(
        ("words", "message"),
        [
            (
                ["--where", "acc >"],
                "error: --where 'acc >' is not a condition on the table's columns",
            ),
            (["--where", "ac > 0.9"], "error: --where 'ac > 0.9': no column 'ac' (did you mean"),
            (
                ["--where", "__import__('os').system('touch pwned')"],
                "error: --where \"__import__('os').system('touch pwned')\"",
            ),
            (["--columns", "f1,acx"], "error: --columns: no column 'acx' (did you mean 'acc'?)"),
            (["--sort", "-accu"], "error: --sort: no column 'accu' (did you mean 'acc'?)"),
            (["--over", "sede"], "error: Train has no parameter 'sede' to summarise over"),
        ],
    )
    def test_a_bad_request_is_one_line_exit_2_and_nothing_written(self, project, words, message):
        """A bad --where, --columns, --sort or --over: one line naming it, exit 2, no file."""
        out = project / "summary.parquet"
        over = [] if "--over" in words else ["--over", "seed"]
        done = experiment(
            "results", "train.Train", *over, *words, "--parquet", str(out), cwd=project
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(message), done.stderr
        assert done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr
        assert not out.exists()
        assert not (project / "pwned").exists()


def png_pixels(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size, image.convert("L")


def not_blank(path: Path) -> bool:
    """Whether a PNG shows something: its grey levels vary and many pixels are not white."""
    from PIL import ImageStat

    _, grey = png_pixels(path)
    stat = ImageStat.Stat(grey)
    dark = sum(grey.histogram()[:200])
    return stat.stddev[0] > 10 and dark > 2000


REPORTS_THEN_RETURNS = """
from superparams import Experiment, search, seeds

class Fit(Experiment):
    lr: float = search(0.1, 0.01)
    seed: int = seeds(2)

    def run(self):
        for epoch in range(3):
            self.report(epoch=epoch, acc=round(self.lr * 10 + epoch / 10 + self.seed / 100, 6))
        return {"test_acc": round(self.lr * 10 + self.seed / 100, 6)}
"""


class TestReportedRowsThenAFinalDict:
    def test_each_metric_is_its_last_value_not_the_last_rows(self, tmp_path):
        """A run() that reports acc per epoch, then returns a final dict without acc: the
        summary over seeds takes each setting's last acc (n=2), not the final row's
        missing one (n=0)."""
        write(tmp_path / "fit.py", REPORTS_THEN_RETURNS)
        assert experiment("fit.Fit", "-q", cwd=tmp_path).returncode == 0
        done = experiment("results", "fit.Fit", "--over", "seed", "--csv", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        rows = {float(r["lr"]): r for r in csv.DictReader(io.StringIO(done.stdout))}
        last = [round(0.1 * 10 + 0.2 + s / 100, 6) for s in range(2)]  # lr=0.1, epoch 2
        assert float(rows[0.1]["acc_mean"]) == pytest.approx(statistics.mean(last))
        assert int(rows[0.1]["acc_n"]) == 2
        assert int(rows[0.1]["test_acc_n"]) == 2


SLICED = """
from superparams import Experiment, search, seeds

class Sliced(Experiment):
    lr: float = search(0.1, 0.01)
    seed: int = seeds(2)

    def run(self):
        return {"acc": self.lr + self.seed}
"""


class TestLabelsFollowTheSpaceShown:
    def test_a_slice_run_first_is_labelled_as_the_whole_grid(self, tmp_path):
        """A grid whose seed 0 ran first (--seed 0), then the rest: every row's label
        names lr and seed, as the whole grid labels them; the slice shown alone names lr."""
        write(tmp_path / "sliced.py", SLICED)
        assert experiment("sliced.Sliced", "--seed", "0", "-q", cwd=tmp_path).returncode == 0
        assert experiment("sliced.Sliced", "-q", cwd=tmp_path).returncode == 0
        whole = experiment("results", "sliced.Sliced", "--csv", cwd=tmp_path)
        labels = [r["label"] for r in csv.DictReader(io.StringIO(whole.stdout))]
        assert labels == ["lr=0.1,seed=0", "lr=0.1,seed=1", "lr=0.01,seed=0", "lr=0.01,seed=1"]
        part = experiment("results", "sliced.Sliced", "--seed", "0", "--csv", cwd=tmp_path)
        labels = [r["label"] for r in csv.DictReader(io.StringIO(part.stdout))]
        assert labels == ["lr=0.1", "lr=0.01"]


class TestPlot:
    def test_png_is_an_image_with_something_on_it(self, project):
        """--out acc.png writes a PNG of publication size, not blank."""
        done = experiment(
            "plot",
            "train.Train",
            "--x",
            "lr",
            "--y",
            "acc",
            "--hue",
            "batch_size",
            "--out",
            "acc.png",
            cwd=project,
        )
        assert done.returncode == 0, done.stderr
        path = project / "acc.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        (width, height), _ = png_pixels(path)
        assert width >= 1000
        assert height >= 600
        assert not_blank(path)

    def test_svg_parses_and_holds_a_band_and_lines(self, project):
        """--out acc.svg writes SVG that parses, with the lines and the ± std band."""
        done = experiment(
            "plot", "train.Train", "--x", "lr", "--y", "acc", "--out", "acc.svg", cwd=project
        )
        assert done.returncode == 0, done.stderr
        root = ET.parse(project / "acc.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        ids = [e.get("id", "") for e in root.iter()]
        assert sum("PolyCollection" in i for i in ids) == 4  # a band per batch_size and opt
        assert any(i.startswith("line2d") for i in ids)

    def test_pdf_learning_curves(self, project):
        """--x epoch on per-epoch rows writes learning curves as a PDF."""
        done = experiment(
            "plot",
            "train.Train",
            "--x",
            "epoch",
            "--y",
            "acc",
            "--hue",
            "lr",
            "--out",
            "curves.pdf",
            cwd=project,
        )
        assert done.returncode == 0, done.stderr
        data = (project / "curves.pdf").read_bytes()
        assert data.startswith(b"%PDF-")
        assert b"%%EOF" in data[-32:]
        assert len(data) > 5000

    def test_categorical_x_gets_points_with_error_bars(self, project):
        """A string parameter on x is drawn as points with error bars, one tick per value."""
        done = experiment(
            "plot", "train.Train", "--x", "opt", "--y", "f1", "--out", "opt.svg", cwd=project
        )
        assert done.returncode == 0, done.stderr
        text = (project / "opt.svg").read_text()
        ET.fromstring(text)
        assert "LineCollection" in text  # the error bars
        png = experiment(
            "plot", "train.Train", "--x", "opt", "--y", "f1", "--out", "opt.png", cwd=project
        )
        assert png.returncode == 0, png.stderr
        assert not_blank(project / "opt.png")

    def test_html_is_self_contained(self, project):
        """--out acc.html writes one page with the SVG inline and no http(s) resource."""
        done = experiment(
            "plot", "train.Train", "--x", "lr", "--y", "acc", "--out", "acc.html", cwd=project
        )
        assert done.returncode == 0, done.stderr
        text = (project / "acc.html").read_text()
        assert text.startswith("<!DOCTYPE html>")
        assert "<svg" in text
        assert no_fetched_url(text)

    @pytest.mark.parametrize(
        ("words", "message"),
        [
            (["--x", "lr", "--y", "acc", "--out", "a.gif"], "error: --out 'a.gif': the extension"),
            (["--x", "lr", "--y", "accu"], "error: --y: Train has no metric 'accu'"),
            (["--x", "lrr", "--y", "acc"], "error: --x: Train has no column 'lrr'"),
            (["--x", "lr", "--y", "acc", "--hue", "seed"], "error: --hue: 'seed' is not a"),
            (["--y", "acc"], "error: experiment plot needs --x"),
        ],
    )
    def test_a_bad_request_is_one_line_exit_2(self, project, words, message):
        """A wrong extension, metric, column or hue: one line naming it, exit 2, no file."""
        before = set(project.iterdir())
        done = experiment("plot", "train.Train", *words, cwd=project)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(message), done.stderr
        assert done.stderr.count("\n") == 1
        assert set(project.iterdir()) == before

    @pytest.mark.parametrize(
        ("command", "hidden", "said"),
        [
            (
                "plot",
                "matplotlib",
                "draws with matplotlib, which is not installed: pip install 'superparams[plot]'",
            ),
            (
                "report",
                "plotly",
                "needs plotly, which is not installed: pip install 'superparams[view]'",
            ),
        ],
    )
    def test_without_the_extra_the_install_line(self, project, tmp_path, command, hidden, said):
        """Without its library, plot and report say the pip line of the extra, exit 2."""
        write(tmp_path / f"hide/{hidden}/__init__.py", "raise ImportError('hidden')\n")
        words = ["--x", "lr", "--y", "acc"] if command == "plot" else []
        done = experiment(
            command,
            "train.Train",
            *words,
            "--out",
            str(tmp_path / "out.html"),
            cwd=project,
            PYTHONPATH=os.pathsep.join([str(tmp_path / "hide"), os.environ.get("PYTHONPATH", "")]),
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr == f"error: experiment {command} {said}\n"
        assert not (tmp_path / "out.html").exists()


GRID = """
from superparams import Experiment, search, seeds

class Grid(Experiment):
    C: float = search(0.1, 1.0, 10.0, 100.0)
    gamma: float = search(0.001, 0.01, 0.1)
    kernel: str = search("rbf", "poly")
    seed: int = seeds(2)

    def run(self):
        acc = 0.5 + 0.1 * (self.C > 1) + self.gamma + self.seed * 0.01
        return [{"epoch": e, "acc": acc - (9 - e) * 0.01} for e in range(0, 10)]
"""

MANY = """
from superparams import Experiment, search

class Many(Experiment):
    k: int = search(*range(100))

    def run(self):
        return [{"step": s, "loss": 10.0 ** (-s) * (1 + self.k / 100)} for s in range(4)]
"""


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """A folder where a 4 x 3 x 2 grid over two seeds, and a 100-value search, have run."""
    root = tmp_path_factory.mktemp("grids")
    write(root / "grid.py", GRID)
    write(root / "many.py", MANY)
    for name in ("grid.Grid", "many.Many"):
        done = experiment(name, "-q", "-j", "2", cwd=root)
        assert done.returncode == 0, done.stderr
    return root


def svg_texts(path: Path) -> list[str]:
    """The text an SVG written with its fonts as paths shows, from matplotlib's comments."""
    import re

    return re.findall(r"<!-- (.*?) -->", path.read_text())


class TestPlotOptions:
    def test_a_heatmap_of_two_parameters_with_each_cells_mean(self, grids):
        """--heatmap gamma with --x C: a cell per pair, its value the mean over the seeds
        as computed by hand, and a colour bar naming the metric."""
        done = experiment(
            "plot", "grid.Grid", "--x", "C", "--heatmap", "gamma", "--y", "acc",
            "--kernel", "rbf", "--out", "heat.svg", cwd=grids,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr == "wrote heat.svg\n"
        texts = svg_texts(grids / "heat.svg")
        mean = statistics.mean(0.5 + 0.1 + 0.01 + s * 0.01 for s in range(2))  # C=10, gamma=.01
        assert f"{mean:.3g}" in texts
        assert "acc (mean over seed)" in texts
        assert {"0.001", "0.01", "0.1", "100"} <= set(texts)

    def test_a_heatmap_refuses_to_mix_settings(self, grids):
        """Another field that varies (kernel) would mix settings in a cell: one line, exit 2."""
        done = experiment(
            "plot", "grid.Grid", "--x", "C", "--heatmap", "gamma", "--y", "acc",
            "--out", "mixed.png", cwd=grids,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr == (
            "error: --heatmap: kernel also vary, and a cell would mix their settings; "
            "fix them (--kernel VALUE) for one heatmap each\n"
        )
        assert not (grids / "mixed.png").exists()

    def test_a_hundred_hues_get_a_colour_bar_and_no_warning(self, grids):
        """--hue over 100 values: a colour bar in place of a legend, nothing on stderr."""
        done = experiment(
            "plot", "many.Many", "--x", "step", "--y", "loss", "--hue", "k",
            "--out", "many.svg", cwd=grids,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr == "wrote many.svg\n"  # and no warning
        texts = svg_texts(grids / "many.svg")
        assert "k" in texts  # the colour bar's label
        assert not any(t.startswith("k=") for t in texts)  # no legend entries

    def test_steps_get_integer_ticks_and_labels_are_as_given(self, grids):
        """An integer x (epoch) has no tick between steps; --title, --xlabel, --ylabel and
        --size dress the figure; --logy draws the axis in log scale."""
        done = experiment(
            "plot", "many.Many", "--x", "step", "--y", "loss", "--hue", "k", "--logy",
            "--title", "Loss $ by step", "--xlabel", "training step", "--ylabel", "loss (log)",
            "--size", "8x5", "--out", "dressed.svg", cwd=grids,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        texts = svg_texts(grids / "dressed.svg")
        assert {"Loss $ by step", "training step", "loss (log)"} <= set(texts)
        assert not any(t in texts for t in ("0.5", "1.5", "2.5"))
        assert any(t.startswith("$\\mathdefault{10^{") for t in texts)  # log ticks
        root = ET.parse(grids / "dressed.svg").getroot()
        assert root.get("width") == "576pt"  # 8 inches
        assert root.get("height") == "360pt"

    @pytest.mark.parametrize(
        ("words", "message"),
        [
            (["--size", "8"], "error: --size '8': give the width and height in inches, e.g. 8x5"),
            (["--size", "0x5"], "error: --size '0x5': give the width and height in inches"),
            (["--logx"], "error: --logx: step has values down to 0, and a log axis needs them"),
            (["--heatmap", "k"], "error: --x: 'step' is not a parameter that varies; those that"),
            (["--heatmap", "k", "--hue", "k"], "error: --heatmap and --hue do not go together"),
        ],
    )
    def test_a_bad_style_is_one_line_exit_2(self, grids, words, message):
        """A size that is not WxH, a log axis over zero, a heatmap along a step: exit 2."""
        done = experiment(
            "plot", "many.Many", "--x", "step", "--y", "loss", *words, "--out", "bad.png",
            cwd=grids,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(message), done.stderr
        assert done.stderr.count("\n") == 1
        assert not (grids / "bad.png").exists()


def no_fetched_url(text: str) -> bool:
    """Whether a page names no http(s) address it would load (src=, href=, url(), import)."""
    import re

    loads = re.findall(
        r"""(?:src|href)\s*=\s*["']?\s*(https?:)|url\(\s*["']?(https?:)|@import""", text
    )
    return not loads


EXAMPLES = Path(__file__).parents[2] / "examples"


class TestQuickStart:
    def test_the_readme_quick_start_ends_with_a_summary_and_a_plot(self, tmp_path):
        """The example's run, summary and plot work as the README writes them."""
        import shutil

        shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("progress"))
        here = tmp_path / "examples"
        run = experiment("train.Train", "--num_proc", "2", cwd=here)
        assert run.returncode == 0, run.stderr
        done = experiment(
            "results",
            "train.Train",
            "--over",
            "seed",
            "--columns",
            "acc",
            "--sort",
            "-acc",
            cwd=here,
        )
        assert done.returncode == 0, done.stderr
        readme = (EXAMPLES.parent / "README.md").read_text()
        assert done.stdout in readme
        plot = experiment(
            "plot", "train.Train", "--x", "lr", "--y", "acc", "--out", "acc.png", cwd=here
        )
        assert plot.returncode == 0, plot.stderr
        assert plot.stderr == "wrote acc.png\n"
        assert not_blank(here / "acc.png")
        curves = experiment(  # the rows each epoch reported, as learning curves
            "plot",
            "train.Train",
            "--x",
            "epoch",
            "--y",
            "acc",
            "--hue",
            "lr",
            "--out",
            "c.png",
            cwd=here,
        )
        assert curves.returncode == 0, curves.stderr
        assert not_blank(here / "c.png")


CLOSE = """
from superparams import Experiment, search, seeds

ACC = {
    (0.1, 0): 0.900, (0.1, 1): 0.920, (0.1, 2): 0.910,
    (0.01, 0): 0.905, (0.01, 1): 0.915, (0.01, 2): 0.912,
    (0.001, 0): 0.500, (0.001, 1): 0.520, (0.001, 2): 0.510,
}

class Close(Experiment):
    lr: float = search(0.1, 0.01, 0.001)
    seed: int = seeds(3)

    def run(self):
        return {"acc": ACC[self.lr, self.seed]}
"""


class TestHonestWinners:
    """results --over seed, sorted by a metric, says whether its first row is a real winner."""

    def test_a_tie_and_a_clear_winner(self, tmp_path):
        """The two best rates are a tie over three seeds; without the runner-up the winner
        is clear; sorted the other way the worst rate is a clear winner for a minimum."""
        write(tmp_path / "close.py", CLOSE)
        assert experiment("close.Close", "-q", cwd=tmp_path).returncode == 0

        def judged(*args: str) -> str:
            done = experiment("results", "close.Close", "--over", "seed", *args, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            return done.stdout.splitlines()[-1]

        how = "(paired t-tests over the shared seeds, Holm-corrected, 95%)"
        assert judged("--sort", "-acc") == f"best acc: lr=0.01, a tie with lr=0.1 {how}"
        assert judged("--sort", "-acc", "--lr", "0.1,0.001") == (
            f"best acc: lr=0.1, ahead of every other row {how}"
        )
        assert judged("--sort", "acc") == f"best acc: lr=0.001, ahead of every other row {how}"

    def test_exports_carry_the_interval(self, tmp_path):
        """--json holds each mean's 95% t-interval beside it, as summary() gives it."""
        write(tmp_path / "close.py", CLOSE)
        assert experiment("close.Close", "-q", cwd=tmp_path).returncode == 0
        done = experiment("results", "close.Close", "--over", "seed", "--json", cwd=tmp_path)
        rows = json.loads(done.stdout)["rows"]
        first = next(r for r in rows if r["lr"] == 0.1)
        half = 4.302652729749464 * 0.01 / 3**0.5  # t(0.975, 2) * sd / sqrt(n)
        assert first["acc_ci_low"] == pytest.approx(0.91 - half)
        assert first["acc_ci_high"] == pytest.approx(0.91 + half)


class TestPaperTables:
    """results --over seed --format latex|markdown: a table to paste into a paper."""

    def test_markdown_and_latex(self, tmp_path):
        """One row per setting, mean ± std rounded at the std's first digit, the best mean
        of the metric in bold; LaTeX escapes what it must; no --over is a usage error."""
        write(tmp_path / "close.py", CLOSE)
        assert experiment("close.Close", "-q", cwd=tmp_path).returncode == 0
        md = experiment(
            "results", "close.Close", "--over", "seed", "--format", "markdown", cwd=tmp_path
        )
        assert md.returncode == 0, md.stderr
        assert md.stdout.splitlines() == [
            "| lr | acc |",
            "| --- | --- |",
            "| 0.1 | 0.910 ± 0.010 |",
            "| 0.01 | **0.911 ± 0.005** |",
            "| 0.001 | 0.510 ± 0.010 |",
        ]
        tex = experiment(
            "results",
            "close.Close",
            "--over",
            "seed",
            "--format",
            "latex",
            "--sort",
            "acc",
            cwd=tmp_path,
        )
        assert tex.returncode == 0, tex.stderr
        lines = tex.stdout.splitlines()
        assert lines[:4] == [
            "\\begin{tabular}{lr}",
            "\\toprule",
            "lr & acc \\\\",
            "\\midrule",
        ]
        assert lines[4] == "0.001 & \\textbf{0.510 $\\pm$ 0.010} \\\\"  # --sort acc: lowest
        bad = experiment("results", "close.Close", "--format", "latex", cwd=tmp_path)
        assert (bad.returncode, bad.stderr) == (
            2,
            "error: --format latex writes a summary over seeds, one row per setting; add "
            "--over seed (or the fields to summarise over)\n",
        )
