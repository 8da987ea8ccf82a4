"""``experiment report``: one HTML file that a real browser opens offline.

The page is loaded in a headless Chromium (tests/e2e/browser.py): it logs no console
error, makes no request beyond its own file, its summary table has a row per setting and
sorts when a column's name is clicked, its charts are drawn, and its screenshot is not
blank.
"""

from __future__ import annotations

import io

import pytest
from tests.conftest import experiment, wait_for, write
from tests.e2e.browser import browser
from tests.e2e.test_analysis_cli import no_fetched_url

pytestmark = pytest.mark.slow

TRAIN = """
from superparams import Experiment, search, seeds

class Train(Experiment):
    lr: float = search(0.1, 0.01, 0.001)
    opt: str = search("adam", "sgd")
    seed: int = seeds(2)

    def run(self):
        if self.lr == 0.1 and self.opt == "sgd" and self.seed == 1:
            print("step 1: loss 3.2")
            print("step 2: loss nan")
            raise FloatingPointError("the loss is nan at step 2")
        acc = 0.95 - self.lr + self.seed / 1000 - (0.01 if self.opt == "sgd" else 0)
        return {"acc": acc, "loss": 1 - acc}
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A run with one failed setting, and the report of it."""
    root = tmp_path_factory.mktemp("report")
    write(root / "train.py", TRAIN)
    run = experiment("train.Train", "-q", "-j", "2", cwd=root)
    assert run.returncode == 1, run.stderr
    (root / "shared").mkdir()
    done = experiment("report", "train.Train", "--out", "shared/report.html", cwd=root)
    return root, done


class TestReportFile:
    def test_written_where_asked_and_said(self, made):
        """report --out writes the file and says where, exit 0."""
        _, done = made
        assert done.returncode == 0, done.stderr
        assert done.stderr == "wrote shared/report.html\n"

    def test_holds_every_part(self, made):
        """The page holds the overview, every row, the failure with its traceback and log
        tail, and the code version: the data is in the file, drawn by its own script."""
        root, _ = made
        text = (root / "shared/report.html").read_text()
        data = page_data(text)
        [train] = data["experiments"]
        assert train["overview"]["title"] == "Train: 12 settings"
        assert len(set(train["settings"]["id"])) == 12
        assert train["settings"]["status"].count("failed") == 1
        assert train["metrics"] == ["acc", "loss"]
        assert len(train["summary"]["acc_mean"]) == 6
        assert any(
            "FloatingPointError: the loss is nan at step 2" in (t or "")
            for t in train["settings"]["traceback"]
        )
        assert any("step 2: loss nan" in log for log in data["logs"]["0"].values())
        assert "code_version" in train["settings"]

    def test_names_no_address_to_load(self, made):
        """Nothing in the page points at http(s): no script, style, image or font from a
        CDN. Plotly is inlined as the plotly package ships it (its own links to its
        authors' sites are text it never loads; Chromium's test sees no request)."""
        from plotly.offline import get_plotlyjs

        root, _ = made
        text = (root / "shared/report.html").read_text()
        bundle = get_plotlyjs()
        assert text.count(bundle) == 1
        own = text.replace(bundle, "")
        assert no_fetched_url(own)
        assert "<script src" not in own

    def test_a_bad_out_is_one_line(self, made):
        """--out to a missing folder or not .html: one line, exit 2, nothing written."""
        root, _ = made
        for out, message in [
            ("nowhere/r.html", "error: --out 'nowhere/r.html': the folder 'nowhere' does not"),
            ("r.png", "error: --out 'r.png': a report is an HTML file"),
        ]:
            done = experiment("report", "train.Train", "--out", out, cwd=root)
            assert done.returncode == 2
            assert done.stderr.startswith(message), done.stderr
            assert done.stderr.count("\n") == 1
        assert not (root / "r.png").exists()


def not_blank(png: bytes) -> bool:
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
        return ImageStat.Stat(grey).stddev[0] > 10 and sum(grey.histogram()[:200]) > 5000


def page_data(text: str) -> dict:
    """The data a report holds, as its script reads it."""
    import json
    import re

    found = re.search(r"<script id='sp-data' type='application/json'>(.*?)</script>", text, re.S)
    assert found is not None
    return json.loads(found.group(1))


def fetched(page) -> list[str]:
    """What the page asked for, but the images Plotly makes in memory (data:, blob:)."""
    return [url for url in page.requests if not url.startswith(("data:", "blob:"))]


class TestReportInChromium:
    def test_loads_offline_without_errors_and_sorts(self, made, tmp_path):
        """In Chromium: no console error, no request but the file, a row per setting, 6
        summary rows, sorting, the charts drawn, the failure's traceback, a picture."""
        root, _ = made
        url = (root / "shared/report.html").resolve().as_uri()
        with browser(tmp_path / "profile") as chromium:
            page = chromium.page()
            page.open(url)
            assert page.console == []
            assert fetched(page) == [url]
            assert page.evaluate("document.body.dataset.ready") == "1"
            wait_for(lambda: page.evaluate("document.body.dataset.charts"), "the charts")
            rows = page.evaluate("document.querySelectorAll('#sp-summary tbody tr').length")
            assert rows == 6  # lr x opt, over the seeds
            assert page.evaluate("document.querySelectorAll('#sp-table tbody tr').length") == 12
            counts = page.evaluate("document.getElementById('sp-counts').textContent")
            assert counts == "12 settings: 11 completed, 1 failed"
            for chart in ("sp-against", "sp-heatmap"):
                drawn = f"document.querySelectorAll('#{chart} svg.main-svg').length"
                assert page.evaluate(drawn) > 0, chart
            column = """Array.from(document.querySelectorAll('#sp-summary tbody tr'))
                        .map(r => r.cells[%d].textContent)"""
            headers = page.evaluate(
                "Array.from(document.querySelectorAll('#sp-summary th')).map(h => h.textContent)"
            )
            acc = headers.index("acc")
            page.evaluate(f"document.querySelectorAll('#sp-summary th')[{acc}].click()")
            ascending = [float(v.split()[0]) for v in page.evaluate(column % acc)]
            assert ascending == sorted(ascending)
            page.evaluate(f"document.querySelectorAll('#sp-summary th')[{acc}].click()")
            descending = [float(v.split()[0]) for v in page.evaluate(column % acc)]
            assert descending == sorted(ascending, reverse=True)
            page.evaluate("document.querySelector('#sp-table tr.status-failed').click()")
            traceback = page.evaluate("document.getElementById('sp-traceback').textContent")
            assert "FloatingPointError: the loss is nan at step 2" in traceback
            assert "step 2: loss nan" in page.evaluate(
                "document.getElementById('sp-log').textContent"
            )
            assert page.console == []
            assert not_blank(page.screenshot())

    def test_a_plot_page_loads_offline_without_errors(self, made, tmp_path):
        """experiment plot --out X.html: in Chromium, no console error, no request, a picture."""
        root, _ = made
        done = experiment(
            "plot", "train.Train", "--x", "lr", "--y", "acc", "--out", "acc.html", cwd=root
        )
        assert done.returncode == 0, done.stderr
        url = (root / "acc.html").resolve().as_uri()
        with browser(tmp_path / "profile") as chromium:
            page = chromium.page()
            page.open(url)
            assert page.evaluate("document.querySelectorAll('figure.plot svg').length") == 1
            assert page.console == []
            assert fetched(page) == [url]
            assert not_blank(page.screenshot())

    def test_the_browser_check_sees_a_request_and_an_error(self, tmp_path):
        """The same check does see a page that fetches and one that throws."""
        page_file = write(
            tmp_path / "bad.html",
            '<!DOCTYPE html><img src="http://127.0.0.1:9/x.png"><script>nope();</script>',
        )
        url = page_file.resolve().as_uri()
        with browser(tmp_path / "profile") as chromium:
            page = chromium.page()
            page.open(url)
            assert "http://127.0.0.1:9/x.png" in page.requests
            assert any("nope is not defined" in line for line in page.console)
