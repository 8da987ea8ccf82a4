"""``experiment report EXPERIMENT``: one self-contained HTML file to share.

The page holds everything it shows: the overview, the summary as a ``<table>`` sorted by
an inline script, each metric against each varied parameter as inline SVG, the failures
with their causes and log tails, and the code version of the rows. It loads nothing from
anywhere, so it opens offline and can be mailed. Needs the ``plot`` extra (matplotlib).
"""

from __future__ import annotations

import html
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams.cli._find import shown
from superparams.cli._shared import results_of, say, store_of
from superparams.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

    from superparams.cli._find import Found
    from superparams.cli._parse import ReportRequest
    from superparams.space import Space

#: At most this many plots (metrics x varied parameters) go in one report.
MAX_PLOTS = 24
#: The last lines of a failed setting's log shown in the report.
LOG_TAIL = 20


def report(found: Found, spaces: list[Space[Any]], request: ReportRequest, prog: str) -> None:
    out = Path(request.out or "report.html")
    if not out.parent.is_dir():
        msg = f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist; make it first"
        raise UsageError(msg)
    from superparams.cli.view import report_page

    out.write_text(report_page(found, spaces), encoding="utf-8")
    say(f"wrote {shown(out)}")


def _section(space: Space[Any]) -> str:
    import polars as pl

    from superparams._summary import _Declared, summary
    from superparams.cli._draw import figure, lines, svg

    cls = space.experiment_class
    table = results_of(space)
    store = store_of(space)
    declared = _Declared(space)
    found = declared.columns(table.columns)
    parts = [f"<section><h2>{_e(cls.__name__)}</h2>", _overview(space, table, store.folder)]
    if table.is_empty():
        parts.append("<p>No results stored yet.</p></section>")
        return "".join(parts)
    over = list(declared.replicates)
    frame = summary(space, over)
    parts.append(_summary_table(frame, over))
    # a metric the same in every summary row (an epoch counter's last value) draws no line
    numeric = [
        m
        for m in found.metrics
        if table.schema[m].is_numeric()
        and f"{m}_mean" in frame.columns
        and frame[f"{m}_mean"].n_unique() > 1
    ]
    plots: list[str] = []
    for metric in numeric:
        for param in found.varied:
            if len(plots) == MAX_PLOTS or param not in table.columns:
                continue
            drawn = lines(space, param, metric, over=tuple(over), table=table)
            if any(m is not None for s in drawn.series for m in s.mean):
                caption = f"{metric} against {param}"
                plots.append(
                    f'<figure class="plot">{svg(figure(drawn))}'
                    f"<figcaption>{_e(caption)}</figcaption></figure>"
                )
    if plots:
        parts.append("<h3>Plots</h3>" + "".join(plots))
    failed = table.filter(pl.col("status") != "completed")
    parts.append(_failures(failed, store))
    parts.append(_code_versions(table))
    parts.append("</section>")
    return "".join(parts)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _overview(space: Space[Any], table: pl.DataFrame, folder: Path) -> str:
    import polars as pl

    from superparams.experiment import Experiment, _overview_rows

    lines = [f"<p>Results in <code>{_e(shown(folder))}</code>.</p>"]
    if table.height and "status" in table.columns:
        counts = table.group_by("id", maintain_order=True).agg(pl.col("status").last())
        tally = counts["status"].value_counts(sort=True).rows()
        said = ", ".join(f"{n} {status}" for status, n in tally)
        lines.append(f'<p class="statuses">Settings: {_e(said)}.</p>')
    if isinstance(space, Experiment):
        title, rows = _overview_rows(space)
        body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
        lines.append(
            f'<table class="overview"><caption>{_e(title)}</caption><thead><tr><th>field</th>'
            f"<th>type</th><th>values</th><th>size</th></tr></thead><tbody>{body}</tbody></table>"
        )
    return "".join(lines)


def _summary_table(frame: pl.DataFrame, over: list[str]) -> str:
    from superparams._summary import parts
    from superparams.cli.results import mean_std

    metrics, keys = parts(frame)
    head = "".join(f'<th data-kind="text">{_e(k)}</th>' for k in keys)
    head += "".join(f'<th data-kind="number">{_e(m)}</th>' for m in metrics)
    head += '<th data-kind="number">left_out</th>'
    body = []
    for row in frame.iter_rows(named=True):
        cells = [f'<td data-value="{_e(row[k])}">{_e(_cell(row[k]))}</td>' for k in keys]
        for m in metrics:
            mean = row[f"{m}_mean"]
            text = mean_std(mean, row[f"{m}_std"], row[f"{m}_n"])
            value = "" if mean is None else repr(float(mean))
            cells.append(f'<td data-value="{value}">{_e(text)}</td>')
        cells.append(f'<td data-value="{row["left_out"]}">{row["left_out"]}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    said = f"mean ± std over {', '.join(over)}" if over else "one row per setting"
    return (
        f"<h3>Summary</h3><p>{_e(said)}; click a column's name to sort by it.</p>"
        f'<table class="summary sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _failures(failed: pl.DataFrame, store: Any) -> str:
    if failed.is_empty():
        return "<h3>Failures</h3><p>None.</p>"
    items = []
    for row in failed.group_by("id", maintain_order=True).last().iter_rows(named=True):
        tail = _tail(Path(store.log_path(row["id"])), LOG_TAIL)
        error = row.get("error") or ""
        items.append(
            f'<li class="failure"><b>{_e(row.get("label"))}</b> [{_e(row.get("status"))}'
            f"{', ' + _e(row.get('cause')) if row.get('cause') else ''}]"
            f'<pre class="error">{_e(error)}</pre>'
            + (
                f'<details><summary>log tail</summary><pre class="log">{_e(tail)}</pre></details>'
                if tail
                else ""
            )
            + "</li>"
        )
    return f"<h3>Failures ({len(items)})</h3><ul>{''.join(items)}</ul>"


def _tail(path: Path, lines: int) -> str:
    from superparams.store import open_in_store

    try:
        with os.fdopen(open_in_store(path, os.O_RDONLY), "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:  # gone, or not a regular file of the folder (a link, a FIFO)
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _code_versions(table: pl.DataFrame) -> str:
    import polars as pl

    columns = [c for c in ("code_version", "git_commit", "git_dirty") if c in table.columns]
    if not columns:
        return ""
    counted = table.group_by(columns, maintain_order=True).agg(pl.len().alias("rows"))
    head = "".join(f"<th>{_e(c)}</th>" for c in [*columns, "rows"])
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in counted.rows()
    )
    return (
        f'<h3>Code version</h3><table class="code"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


# Click a header to sort the table by that column; again to reverse. Numbers by value.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, i) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var number = th.dataset.kind === "number";
      function key(row) {
        var v = row.cells[i].dataset.value;
        if (number) { var f = parseFloat(v); return isNaN(f) ? -Infinity : f; }
        var g = parseFloat(v);
        return isNaN(g) || String(g) !== v ? v : g;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = x < y ? -1 : x > y ? 1 : 0;
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; }
table.sortable th { cursor: pointer; user-select: none; background: #f3f3f3; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
figure.plot { display: inline-block; width: 48%; margin: 0.5%; }
figure.plot svg { width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
"""


def _page(title: str, name: str, body: str) -> str:
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head><body>
<h1>{_e(name)}</h1>
<p class="made">Made {made} by superparams.</p>
{body}
<script>{SORT_SCRIPT}</script>
</body></html>
"""
