"""First paint of ``experiment view`` and of ``experiment report``, for 10,000 settings
of 50 rows each, against reading the same rows with polars.

    python benchmarks/bench_view.py                 # 10,000 settings x 50 rows
    python benchmarks/bench_view.py --settings 1000

The store is made by the real command (each setting returns 50 rows: epoch, loss,
acc), then:

* polars: ``pl.read_parquet(results.parquet)`` in a fresh process, timed inside it
  (the floor: the rows the page draws, read as fast as the format allows);
* view: from the browser's asking for the page to its first paint, the table drawn
  (``window.spPainted``), and to its charts drawn (``window.spCharts``: Plotly is
  loaded after the first paint), in headless Chromium, the server already up;
* view start: from starting ``experiment view`` to its address being printed (the
  store read, the data made ready);
* report: from opening the written file (file://) to the same two moments; and the
  time ``experiment report`` takes to write it.

Target: the first paint at most 1 s here. The machine's load average is printed: the
figures are only comparable at a like load.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.browser import browser

COMMAND = Path(sys.executable).with_name("experiment")

WIDE = """
from superparams import Experiment, search, seeds

class Wide(Experiment):
    lr: float = search(*[10 ** (-k / {per}) for k in range({per} * 4)])
    width: int = search(*range(1, {widths} + 1))
    depth: int = search(1, 2, 3, 4, 5)
    seed: int = seeds(2)

    def run(self):
        rows = []
        for epoch in range({rows}):
            loss = 1 / (1 + epoch * self.lr * self.width) + self.seed / 100
            rows.append({{"epoch": epoch, "loss": loss, "acc": 1 - loss / 2}})
        return rows
"""


def make(root: Path, settings: int, rows: int) -> None:
    per = max(1, settings // (2 * 5 * 4 * 10))
    source = WIDE.format(per=per, widths=10, rows=rows)
    (root / "wide.py").write_text(textwrap.dedent(source))
    began = time.perf_counter()
    subprocess.run([str(COMMAND), "wide.Wide", "-q", "-j", "2"], cwd=root, check=True)
    print(f"made the store in {time.perf_counter() - began:.1f} s")


def polars_read(root: Path) -> float:
    script = (
        "import time; t = time.perf_counter(); import polars as pl; "
        "f = pl.read_parquet('progress/wide/Wide/results.parquet'); "
        "print(time.perf_counter() - t, f.height)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    print(f"polars: {float(out[0]):.3f} s for {int(out[1]):,} rows (import included)")
    return float(out[0])


def painted(chromium, url: str) -> tuple[float, float]:
    """Seconds from asking for ``url`` to the page's table painted, and to its charts
    drawn (Plotly loaded after the first paint), by the page's own clock."""
    page = chromium.page()
    page.send("Page.navigate", url=url)
    deadline = time.monotonic() + 180
    first = None
    while time.monotonic() < deadline:
        chromium.drain(0.02)
        if first is None:
            first = page.evaluate("window.spPainted === undefined ? null : window.spPainted")
        charts = page.evaluate("window.spCharts === undefined ? null : window.spCharts")
        if first is not None and charts is not None:
            assert page.console == [], page.console
            return float(first) / 1000, float(charts) / 1000
    raise TimeoutError("the page never painted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=50)
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make(root, args.settings, args.rows)
        floor = polars_read(root)
        began = time.perf_counter()
        view = subprocess.Popen(
            [str(COMMAND), "view", "wide.Wide"],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert view.stderr is not None
        line = view.stderr.readline()
        print(f"view start: {time.perf_counter() - began:.2f} s to its address")
        url = re.search(r"http://\S+", line)
        assert url is not None, line
        try:
            with browser(root / "profile") as chromium:
                live, drawn = painted(chromium, url.group(0))
                print(f"view: first paint {live:.2f} s, charts drawn {drawn:.2f} s")
                print(f"  first paint / polars read: {live / floor:.1f}x")
        finally:
            view.send_signal(2)
            view.wait(30)
        began = time.perf_counter()
        subprocess.run(
            [str(COMMAND), "report", "wide.Wide", "--out", "r.html"], cwd=root, check=True
        )
        wrote = time.perf_counter() - began
        size = (root / "r.html").stat().st_size / 1e6
        print(f"report: written in {wrote:.2f} s ({size:.1f} MB)")
        with browser(root / "profile2") as chromium:
            offline, drawn = painted(chromium, (root / "r.html").as_uri())
            print(f"report: first paint {offline:.2f} s, charts drawn {drawn:.2f} s (file://)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
