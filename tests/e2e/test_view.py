"""``experiment view``: a live page of the results, in a real headless Chromium.

The real command serves the page on 127.0.0.1 while a real run writes the store; the page
is opened in Chromium (tests/e2e/browser.py), which reports every console error and every
request the page makes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.conftest import COMMAND, environment, experiment, wait_for, write
from tests.e2e.browser import browser

pytestmark = pytest.mark.slow

XSS = "<script>alert(1)</script>"

TRAIN = f"""
import time
from superparams import Experiment, search, seeds

class Train(Experiment):
    lr: float = search(0.1, 0.01, 0.001)
    opt: str = search("adam", {XSS!r})
    seed: int = seeds(2)
    pause: float = 0.0

    def run(self):
        if self.lr == 0.1 and self.opt == "adam" and self.seed == 1:
            print("step 1: loss 3.2")
            raise FloatingPointError("the loss is nan at step 2")
        for epoch in range(5):
            time.sleep(self.pause)
            self.report(epoch=epoch, loss=1 / (1 + epoch * self.lr * 10) + self.seed / 100)
        return {{"acc": 0.9 - self.lr + self.seed / 100, "<img src=x onerror=alert(2)>": 1.0}}
"""


class View:
    """``experiment view`` running in the background, and the address it printed."""

    def __init__(self, cwd: Path, *words: str) -> None:
        self.process = subprocess.Popen(
            [str(COMMAND), "view", *words],
            cwd=cwd,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert found is not None, line + self.process.stderr.read()
        self.origin, self.token = found.groups()
        self.url = f"{self.origin}/?token={self.token}"

    def stop(self) -> subprocess.CompletedProcess[str]:
        """Ctrl-C, and what it said."""
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=20)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"{self.origin}{path}", timeout=10) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return error.code


@pytest.fixture
def view(tmp_path):
    """A finished run with one failed setting, and its view; stopped after the test."""
    write(tmp_path / "train.py", TRAIN)
    run = experiment("train.Train", "-q", "-j", "2", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    served = View(tmp_path, "train.Train")
    yield served
    if served.process.poll() is None:
        served.stop()


def fetched_elsewhere(page, origin: str) -> list[str]:
    """The requests the page made to anywhere but its own origin (images Plotly makes in
    memory, data: and blob:, load nothing)."""
    return [url for url in page.requests if not url.startswith((f"{origin}/", "data:", "blob:"))]


def not_blank(png: bytes) -> bool:
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
        colours = len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16))
        return ImageStat.Stat(grey).stddev[0] > 10 and colours > 20


def element_shot(page, selector: str) -> bytes:
    """A screenshot of one element of the page."""
    import base64

    box = page.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return [r.x + scrollX, r.y + scrollY, r.width, r.height]; })()"
    )
    x, y, width, height = box
    reply = page.send(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": x, "y": y, "width": width, "height": height, "scale": 1},
    )
    return base64.b64decode(reply["data"])


def folder_state(folder: Path) -> dict[str, tuple[str, int]]:
    """Each file of a folder: its content's hash and its modification time."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


class TestAddress:
    def test_a_request_without_the_token_is_refused(self, view):
        """Every address of the server refuses a request without its token, or with
        another, with 403; with it, the page and its data are served."""
        for path in ("/", "/api/data", "/api/changes?since=0", "/api/log?id=x", "/plotly.min.js"):
            assert view.status(path) == 403, path
            joined = "&" if "?" in path else "?"
            assert view.status(f"{path}{joined}token=not-{view.token}") == 403, path
        assert view.status(f"/?token={view.token}") == 200
        assert view.status(f"/api/data?token={view.token}") == 200
        assert view.status(f"/plotly.min.js?token={view.token}") == 200

    def test_serves_nothing_outside_the_store(self, view):
        """No path from the request is read: a file's name, a log's path, a setting id
        that is not stored all get nothing."""
        for path in (
            "/etc/passwd",
            "/../../etc/passwd",
            "/api/log?id=../../../etc/passwd",
            "/api/log?id=%2Fetc%2Fpasswd",
            "/api/log?experiment=7&id=x",
        ):
            joined = "&" if "?" in path else "?"
            assert view.status(f"{path}{joined}token={view.token}") == 404, path

    def test_a_log_is_read_only_as_a_regular_file(self, tmp_path, view):
        """A stored setting's log that is a link to a file outside the folder is not
        followed: nothing of that file is served."""
        import json

        with urllib.request.urlopen(f"{view.origin}/api/data?token={view.token}") as reply:
            data = json.load(reply)
        sid = data["experiments"][0]["settings"]["id"][0]
        log = tmp_path / f"progress/train/Train/logs/{sid}.log"
        secret = write(tmp_path / "secret.txt", "not the store's\n")
        log.unlink(missing_ok=True)
        log.symlink_to(secret)
        assert view.status(f"/api/log?id={sid}&token={view.token}") == 404

    def test_ctrl_c_stops_it_cleanly(self, view):
        """Ctrl-C ends the view with exit 0 and no traceback; it had said its address."""
        done = view.stop()
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr

    def test_it_writes_nothing_in_the_results_folder(self, tmp_path, view):
        """Opening the page, its data and a log leaves every file of the folder as it was."""
        folder = tmp_path / "progress/train/Train"
        before = folder_state(folder)
        with browser(tmp_path / "profile") as chromium:
            page = chromium.page()
            page.open(view.url)
            wait_for(lambda: page.evaluate("document.body.dataset.ready") == "1", "the page")
            page.evaluate("document.querySelector('#sp-table tr.status-failed').click()")
            wait_for(
                lambda: "step 1" in page.evaluate("document.getElementById('sp-log').textContent"),
                "the log",
            )
            time.sleep(1.5)  # a poll or two of the record
        view.stop()
        assert folder_state(folder) == before


class TestPage:
    def test_shows_the_results_sorts_and_escapes(self, tmp_path, view):
        """The table has a row per setting, sorts by a clicked column, shows a failure's
        traceback and log; values and names with markup are text; no console error, no
        request leaves the page's origin."""
        with browser(tmp_path / "profile") as chromium:
            page = chromium.page()
            page.open(view.url)
            wait_for(lambda: page.evaluate("document.body.dataset.ready") == "1", "the page")
            assert page.evaluate("document.querySelectorAll('#sp-table tbody tr').length") == 12
            headers = page.evaluate(
                "Array.from(document.querySelectorAll('#sp-table th')).map(h => h.textContent)"
            )
            assert "<img src=x onerror=alert(2)>" in headers
            assert "epoch" in headers
            acc = headers.index("acc")
            cells = f"""Array.from(document.querySelectorAll('#sp-table tbody tr'))
                        .map(r => r.cells[{acc}].textContent).filter(t => t !== '')
                        .map(Number)"""
            page.evaluate(f"document.querySelectorAll('#sp-table th')[{acc}].click()")
            ascending = page.evaluate(cells)
            assert len(ascending) == 11
            assert ascending == sorted(ascending)
            page.evaluate(f"document.querySelectorAll('#sp-table th')[{acc}].click()")
            assert page.evaluate(cells) == sorted(ascending, reverse=True)
            texts = page.evaluate(
                "Array.from(document.querySelectorAll('#sp-table td')).map(c => c.textContent)"
            )
            assert XSS in texts
            assert page.evaluate("document.querySelectorAll('#sp-table script, img').length") == 0
            page.evaluate("document.querySelector('#sp-table tr.status-failed').click()")
            traceback = page.evaluate("document.getElementById('sp-traceback').textContent")
            assert "FloatingPointError: the loss is nan at step 2" in traceback
            wait_for(
                lambda: (
                    "step 1: loss 3.2"
                    in page.evaluate("document.getElementById('sp-log').textContent")
                ),
                "the failed setting's log",
            )
            versions = page.evaluate("document.getElementById('sp-code').textContent")
            assert "(current)" in versions
            chromium.drain(1.5)
            assert page.console == []
            assert fetched_elsewhere(page, view.origin) == []

    def test_outdated_rows_and_winners_are_marked(self, tmp_path):
        """After run() is edited, the rows, the summary rows and the winner that earlier
        code made are marked outdated, those of the current code are not."""
        path = write(tmp_path / "train.py", TRAIN)
        assert experiment("train.Train", "-q", cwd=tmp_path).returncode == 1
        edited = path.read_text().replace("0.9 - self.lr", "0.8 - self.lr")
        path.write_text(
            edited.replace("search(0.1, 0.01, 0.001)", "search(0.1, 0.01, 0.001, 1e-4)")
        )
        assert experiment("train.Train", "-q", cwd=tmp_path).returncode == 1  # the same failure
        served = View(tmp_path, "train.Train")
        try:
            with browser(tmp_path / "profile") as chromium:
                page = chromium.page()
                page.open(served.url)
                wait_for(lambda: page.evaluate("document.body.dataset.ready") == "1", "the page")
                marked = """Array.from(document.querySelectorAll('#sp-table tbody tr'))
                            .filter(r => r.classList.contains('outdated')).length"""
                assert page.evaluate(marked) == 11  # the completed of the first run
                assert page.evaluate("document.querySelectorAll('#sp-table tbody tr').length") == 16
                heads = "Array.from(document.querySelectorAll('#sp-summary th'))"
                headers = page.evaluate(heads + ".map(h => h.textContent)")
                assert headers[-1] == "outdated"
                column = """Array.from(document.querySelectorAll('#sp-summary tbody tr'))
                            .map(r => [r.cells[0].textContent, r.cells[%d].textContent])"""
                rows = page.evaluate(column % (len(headers) - 1))
                assert sorted({lr for lr, mark in rows if mark == "outdated"}) == [
                    "0.001",
                    "0.01",
                    "0.1",
                ]
                winners = page.evaluate(
                    "Array.from(document.querySelectorAll('#sp-best li.outdated'))"
                    ".map(li => li.textContent)"
                )
                assert len(winners) == 1  # the highest acc: lr=0.001, by the earlier code
                assert "outdated: made by an earlier version of the code" in winners[0]
                assert page.console == []
        finally:
            served.stop()

    def test_metrics_are_chosen_and_steps_are_not_metrics(self, tmp_path, view):
        """The metric chooser offers what run() returned and reported, never the step
        column nor bookkeeping; choosing one redraws the charts for it and names the
        setting with its highest mean, with best()'s verdict."""
        with browser(tmp_path / "profile") as chromium:
            page = chromium.page()
            page.open(view.url)
            wait_for(lambda: page.evaluate("document.body.dataset.ready") == "1", "the page")
            offered = page.evaluate(
                "Array.from(document.querySelectorAll('#sp-metric option')).map(o => o.value)"
            )
            assert sorted(offered) == sorted(["loss", "acc", "<img src=x onerror=alert(2)>"])
            steps = page.evaluate(
                "Array.from(document.querySelectorAll('#sp-step option')).map(o => o.value)"
            )
            assert steps == ["epoch"]
            page.evaluate(
                "(() => { const s = document.getElementById('sp-metric'); s.value = 'acc';"
                " s.dispatchEvent(new Event('change')); })()"
            )
            title = "document.querySelector('#sp-against .gtitle')?.textContent"
            wait_for(lambda: page.evaluate(title) == "acc against lr (± std)", "acc's chart")
            heat = "document.querySelector('#sp-heatmap .gtitle')?.textContent"
            wait_for(lambda: page.evaluate(heat) == "acc by lr and opt", "acc's heatmap")
            winners = page.evaluate("document.getElementById('sp-best').textContent")
            assert "highest mean acc: 0.904 at lr=0.001, opt=adam (tie" in winners
            assert page.console == []

    def test_the_learning_curves_are_drawn(self, tmp_path, view):
        """The learning curves (loss per epoch, mean ± std over the seeds) are a picture,
        not a blank box."""
        with browser(tmp_path / "profile") as chromium:
            page = chromium.page()
            page.open(view.url)
            wait_for(lambda: page.evaluate("document.body.dataset.ready") == "1", "the page")
            wait_for(lambda: page.evaluate("document.body.dataset.charts"), "the charts")
            title = page.evaluate("document.querySelector('#sp-curves .gtitle').textContent")
            assert title == "loss per epoch (mean ± std over seed)"
            lines = page.evaluate("document.querySelectorAll('#sp-curves path.js-fill').length")
            assert lines > 0  # the bands over the seeds
            shot = element_shot(page, "#sp-curves")
            (tmp_path / "curves.png").write_bytes(shot)
            assert not_blank(shot)
            assert page.console == []


class TestLive:
    def test_a_new_row_arrives_without_a_reload(self, tmp_path):
        """While a run writes the store, its new rows appear on the open page without a
        reload, the last within 2 s of the run's end; nothing is fetched from elsewhere."""
        write(tmp_path / "train.py", TRAIN)
        fields = ["--pause", "0.15", "--lr", "0.01,0.001"]
        with open(tmp_path / "run.err", "w") as err:
            run = subprocess.Popen(
                [str(COMMAND), "train.Train", "-q", *fields],
                cwd=tmp_path,
                env=environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        record = tmp_path / "progress/train/Train/record.jsonl"
        wait_for(record.exists, "the run to start")
        served = View(tmp_path, "train.Train", *fields)
        try:
            with browser(tmp_path / "profile") as chromium:
                page = chromium.page()
                page.open(served.url)
                wait_for(lambda: page.evaluate("document.body.dataset.ready") == "1", "page")
                page.evaluate("window.notReloaded = true")
                first = page.evaluate("document.querySelectorAll('#sp-table tbody tr').length")
                assert first < 8
                assert run.wait(60) == 0, (tmp_path / "run.err").read_text()
                ended = time.monotonic()
                wait_for(
                    lambda: (
                        page.evaluate("document.getElementById('sp-counts').textContent")
                        == "8 settings: 8 completed"
                    ),
                    "every setting on the page",
                    timeout=2,
                )
                assert time.monotonic() - ended <= 2
                assert page.evaluate("window.notReloaded") is True
                assert int(page.evaluate("document.body.dataset.version")) >= 1
                assert page.console == []
                assert fetched_elsewhere(page, served.origin) == []
        finally:
            if run.poll() is None:
                run.kill()
            done = served.stop()
        assert done.returncode == 0, done.stderr


class TestWithoutTheExtra:
    def test_the_install_line(self, tmp_path):
        """Without uvicorn, view says the pip line of the extra, exit 2."""
        write(tmp_path / "train.py", TRAIN)
        write(tmp_path / "hide/uvicorn/__init__.py", "raise ImportError('hidden')\n")
        path = os.pathsep.join([str(tmp_path / "hide"), os.environ.get("PYTHONPATH", "")])
        done = experiment("view", "train.Train", cwd=tmp_path, PYTHONPATH=path)
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            "error: experiment view needs uvicorn, which is not installed: "
            "pip install 'superparams[view]'\n"
        )
