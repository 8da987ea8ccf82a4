"""The plots of ``experiment plot`` and ``experiment report``: what to draw, then drawing it.

:func:`lines` turns a space's results into the series to draw (polars only); :func:`figure`
draws them with matplotlib, which only this module imports, and only when it draws (the
``plot`` extra). Figures are made without pyplot, so no window, backend or global state
is involved; :func:`save` writes PNG, SVG, PDF, or an HTML page holding the SVG.
"""

from __future__ import annotations

import dataclasses
import html
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from superparams.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from superparams._space import Space

INSTALL = "pip install 'superparams[plot]'"


def require_matplotlib(command: str) -> None:
    """Raises UsageError naming the install line when the ``plot`` extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        msg = f"experiment {command} draws with matplotlib, which is not installed: {INSTALL}"
        raise UsageError(msg) from None


@dataclass(frozen=True)
class Style:
    """How a plot is dressed: the command's ``--title``, ``--xlabel``, ``--ylabel``,
    ``--logx``, ``--logy`` and ``--size``; None leaves the choice to the data."""

    title: str | None = None
    xlabel: str | None = None
    ylabel: str | None = None
    logx: bool | None = None  # None: log when the values are positive and log-spaced
    logy: bool = False
    size: tuple[float, float] = (6.4, 4.2)  # inches


#: Past this many series, a legend inside the axes would hide the lines: a colour bar
#: (one numeric field) or a legend outside the axes takes its place.
MAX_INSIDE = 10


@dataclass(frozen=True)
class Line:
    """One series: its label, and the mean, std and n of the metric at each x."""

    label: str
    x: list[Any]
    mean: list[float | None]
    std: list[float | None]
    n: list[int]
    hue: Any = None  # the value of the first field the series differ by
    # whether earlier code made each point (any setting it averages): drawn apart
    outdated: list[bool] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Lines:
    """What one plot draws: the series, and how (a curve, or points for a categorical x)."""

    title: str
    x: str
    y: str
    over: tuple[str, ...]
    series: tuple[Line, ...]
    categorical: bool
    legend: str  # the fields the series differ by, for the legend's title


def lines(
    space: Space[Any],
    x: str,
    y: str,
    hue: str | None = None,
    over: tuple[str, ...] | None = None,
    table: pl.DataFrame | None = None,
) -> Lines:
    """The series of ``y`` against ``x``: one per setting of the varied fields other than
    ``x`` (``hue`` first), averaged over ``over`` (the declared seeds by default).

    ``x`` is a parameter (each setting counts by its last row, as in a summary), or a
    column of the rows a setting returned (``epoch``: learning curves).

    Raises:
        UsageError: ``x``, ``y`` or ``hue`` names no such column.
    """
    import polars as pl

    from superparams._outdated import OUTDATED, any_outdated, mark
    from superparams._summary import OUTDATED_ROW

    if table is None:
        table = space.results()
    if OUTDATED not in table.columns:
        table = mark(table, None)
    found, over, name = _plotted(space, table, y, over)
    if x == y:
        msg = f"--x and --y are both {x!r}; plot a metric against a parameter or epoch"
        raise UsageError(msg)
    choices = [*found.parameters, *(m for m in found.metrics if m != y)]
    if x not in choices:
        msg = f"--x: {name} has no column {x!r}{did_you_mean(x, choices)}; columns: "
        raise UsageError(msg + ", ".join(choices))
    varied = [c for c in found.varied if c not in over and c != x and c in table.columns]
    if hue is not None:
        if hue not in varied:
            listed = ", ".join(varied) or "none besides --x"
            msg = (
                f"--hue: {hue!r} is not a parameter that varies{did_you_mean(hue, varied)}; "
                f"those that do: {listed}"
            )
            raise UsageError(msg)
        varied = [hue, *(v for v in varied if v != hue)]
    done = table.filter(pl.col("status") == "completed")
    # the statistics' columns start with _sp_, which no field's name may: none collides
    if x in found.parameters:
        from superparams._summary import summarise

        summarised = summarise(space, list(over), table=table)
        frame = summarised.frame
        keys = [k for k in varied if k in frame.columns]
        frame = frame.select(
            *keys,
            pl.col(x),
            *(pl.col(summarised.column(y, s)).alias(f"_sp_{s}") for s in ("mean", "std", "n")),
            pl.col(OUTDATED_ROW),
        )
    else:
        keys = varied
        frame = (
            done.filter(pl.col(x).is_not_null())
            .group_by([*keys, x], maintain_order=True)
            .agg(
                pl.col(y).cast(pl.Float64).mean().alias("_sp_mean"),
                pl.col(y).cast(pl.Float64).std(ddof=1).alias("_sp_std"),
                pl.col(y).count().cast(pl.Int64).alias("_sp_n"),
                any_outdated(pl.col(OUTDATED)).alias(OUTDATED_ROW),
            )
        )
    categorical = not _is_numeric(table.schema[x])
    series = []
    parts = frame.partition_by(keys, maintain_order=True) if keys else [frame]
    for part in parts:
        if not categorical:
            part = part.sort(x)
        first = part.row(0, named=True) if part.height else {}
        label = ", ".join(f"{k}={_shown(first.get(k))}" for k in keys)
        series.append(
            Line(
                label,
                [_shown(v) if categorical else v for v in part[x].to_list()],
                part["_sp_mean"].to_list(),
                part["_sp_std"].to_list(),
                part["_sp_n"].to_list(),
                first.get(keys[0]) if len(keys) == 1 else None,
                [bool(v) for v in part[OUTDATED_ROW].to_list()],
            )
        )
    return Lines(name, x, y, tuple(over), tuple(series), categorical, ", ".join(keys))


@dataclass(frozen=True)
class Cells:
    """A heatmap: the mean of ``metric`` at each pair of values of two parameters."""

    title: str
    x: str
    y: str
    metric: str
    over: tuple[str, ...]
    xs: list[Any]
    ys: list[Any]
    mean: list[list[float | None]]  # mean[i][j]: at ys[i], xs[j]; None: nothing ran
    n: list[list[int]]
    outdated: list[list[bool]] = dataclasses.field(default_factory=list)  # made by earlier code


def cells(
    space: Space[Any],
    x: str,
    y: str,
    metric: str,
    over: tuple[str, ...] | None = None,
    table: pl.DataFrame | None = None,
) -> Cells:
    """The mean of ``metric`` over ``over`` (the declared seeds by default) at each pair of
    values of the parameters ``x`` and ``y``. Every other varied field must be fixed (a
    heatmap that averaged over it would claim a value no setting had).

    Raises:
        UsageError: no such metric or parameter, or another field still varies.
    """
    from superparams._summary import OUTDATED_ROW, summarise

    if table is None:
        table = space.results()
    found, over, name = _plotted(space, table, metric, over)
    varied = [c for c in found.varied if c not in over and c in table.columns]
    for option, field in (("--x", x), ("--heatmap", y)):
        if field not in varied:
            listed = ", ".join(varied) or "none"
            msg = (
                f"{option}: {field!r} is not a parameter that varies"
                f"{did_you_mean(field, varied)}; those that do: {listed}"
            )
            raise UsageError(msg)
    if x == y:
        msg = f"--x and --heatmap are both {x!r}; a heatmap needs two parameters"
        raise UsageError(msg)
    others = [c for c in varied if c not in (x, y)]
    if others:
        fix = " ".join(f"--{c} VALUE" for c in others)
        msg = (
            f"--heatmap: {', '.join(others)} also vary, and a cell would mix their settings; "
            f"fix them ({fix}) for one heatmap each"
        )
        raise UsageError(msg)
    summarised = summarise(space, list(over), table=table)
    frame = summarised.frame
    mean, count = summarised.column(metric, "mean"), summarised.column(metric, "n")
    xs = sorted(frame[x].unique().drop_nulls().to_list())
    ys = sorted(frame[y].unique().drop_nulls().to_list())
    at = {(r[y], r[x]): (r[mean], r[count]) for r in frame.iter_rows(named=True)}
    grid = [[at.get((b, a), (None, 0)) for a in xs] for b in ys]
    stale = {(r[y], r[x]) for r in frame.iter_rows(named=True) if r[OUTDATED_ROW]}
    return Cells(
        name,
        x,
        y,
        metric,
        tuple(over),
        xs,
        ys,
        [[m for m, _ in row] for row in grid],
        [[n or 0 for _, n in row] for row in grid],
        [[(b, a) in stale for a in xs] for b in ys],
    )


#: Past this many cells a side, the cells carry no printed value (it would not fit).
MAX_ANNOTATED = 12


def heatmap(drawn: Cells, style: Style | None = None) -> Figure:
    """The heatmap: a cell per pair of values, its colour the mean, with a colour bar."""
    from matplotlib import rc_context

    with rc_context(PLAIN_TEXT):
        return _heatmap(drawn, style or Style())


def _heatmap(drawn: Cells, style: Style) -> Figure:
    import math

    import matplotlib as mpl
    from matplotlib.figure import Figure

    if style.logx or style.logy:
        msg = "--logx and --logy do not apply to a heatmap: its cells are the values run"
        raise UsageError(msg)
    fig = Figure(figsize=style.size, layout="constrained")
    ax = fig.add_subplot()
    values = [[math.nan if m is None else m for m in row] for row in drawn.mean]
    cmap = mpl.colormaps["viridis"].with_extremes(bad="#dddddd")
    image = ax.imshow(values, cmap=cmap, origin="lower", aspect="auto")
    ax.set_xticks(range(len(drawn.xs)), [_shown(v) for v in drawn.xs])
    ax.set_yticks(range(len(drawn.ys)), [_shown(v) for v in drawn.ys])
    if len(drawn.xs) <= MAX_ANNOTATED and len(drawn.ys) <= MAX_ANNOTATED:
        finite = [v for row in values for v in row if not math.isnan(v)]
        middle = (min(finite) + max(finite)) / 2 if finite else 0.0
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    shade = "black" if v > middle else "white"
                    ax.text(j, i, f"{v:.3g}", ha="center", va="center", color=shade, fontsize=8)
    ax.set_xlabel(drawn.x if style.xlabel is None else style.xlabel)
    ax.set_ylabel(drawn.y if style.ylabel is None else style.ylabel)
    ax.set_title(drawn.title if style.title is None else style.title)
    over = f" (mean over {', '.join(drawn.over)})" if drawn.over else ""
    fig.colorbar(image, ax=ax, label=f"{drawn.metric}{over}")
    stale = [(i, j) for i, row in enumerate(drawn.outdated) for j, v in enumerate(row) if v]
    if stale:
        from matplotlib.patches import Rectangle

        for i, j in stale:
            cell = Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", lw=0)
            cell.set_edgecolor(OUTDATED_COLOUR)
            ax.add_patch(cell)
        _note(ax, "hatched: outdated")
    return fig


#: The colour that marks what an earlier version of the experiment's code made.
OUTDATED_COLOUR = "#b26a00"


def _note(ax: Any, text: str) -> None:
    """Say on the plot how what earlier code made is drawn, right of the title."""
    ax.set_title(f"({text})", loc="right", fontsize="small", color=OUTDATED_COLOUR)


def _plotted(
    space: Space[Any], table: pl.DataFrame, metric: str, over: tuple[str, ...] | None
) -> tuple[Any, tuple[str, ...], str]:
    """What a plot of ``metric`` reads: the table's columns as the space declares them,
    the fields it averages over (the declared seeds by default) and the class's name.

    Raises:
        UsageError: ``metric`` is no numeric metric of the table (``--y``).
    """
    from superparams._summary import DeclaredColumns

    declared = DeclaredColumns(space)
    found = declared.columns(table.columns)
    name = space.experiment_class.__name__
    numeric = [m for m in found.metrics if _is_numeric(table.schema[m])]
    if metric not in numeric:
        msg = (
            f"--y: {name} has no metric {metric!r}{did_you_mean(metric, numeric)}; "
            f"its metrics are {', '.join(numeric) or 'none yet (nothing completed)'}"
        )
        raise UsageError(msg)
    return found, tuple(declared.replicates) if over is None else over, name


def _is_numeric(dtype: pl.DataType) -> bool:
    return bool(dtype.is_numeric())


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


#: Values and names are text: ``$5 and $6`` is drawn as written, never as mathtext (a
#: Text takes this when it is made, a tick label when the figure is drawn: both are
#: done under it), and a user's matplotlibrc asking for LaTeX does not apply either.
PLAIN_TEXT: dict[Any, Any] = {"text.parse_math": False, "text.usetex": False}


def figure(lines: Lines, style: Style | None = None) -> Figure:
    """The plot: a line with a band of ± std per series, or points with error bars.

    Raises:
        UsageError: a log axis asked for values that are not all positive.
    """
    from matplotlib import rc_context

    with rc_context(PLAIN_TEXT):
        return _figure(lines, style or Style())


def _colors(lines: Lines) -> tuple[list[Any], Any]:
    """A colour per series, and the colour bar's mappable when the hue is one number."""
    import matplotlib as mpl
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    n = len(lines.series)
    if n <= MAX_INSIDE:
        return [f"C{i}" for i in range(n)], None
    hues = [s.hue for s in lines.series]
    if all(isinstance(h, (int, float)) and not isinstance(h, bool) for h in hues):
        norm = Normalize(min(hues), max(hues))
        cmap = mpl.colormaps["viridis"]
        return [cmap(norm(h)) for h in hues], ScalarMappable(norm=norm, cmap=cmap)
    if n <= 20:
        return [mpl.colormaps["tab20"](i) for i in range(n)], None
    turbo = mpl.colormaps["turbo"]
    return [turbo(i / (n - 1)) for i in range(n)], None


def _figure(lines: Lines, style: Style) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=style.size, layout="constrained")
    ax = fig.add_subplot()
    colors, scale = _colors(lines)
    categories: list[str] = []
    if lines.categorical:
        categories = list(dict.fromkeys(v for s in lines.series for v in s.x))
    width = 0.6 / max(len(lines.series), 1)
    for i, (line, color) in enumerate(zip(lines.series, colors, strict=True)):
        mean = [float("nan") if m is None else m for m in line.mean]
        std = [float("nan") if s is None else s for s in line.std]
        label = line.label or None
        stale = [k for k, v in enumerate(line.outdated) if v]
        if lines.categorical:
            offset = (i - (len(lines.series) - 1) / 2) * width
            where = [categories.index(v) + offset for v in line.x]
            ax.errorbar(where, mean, yerr=std, fmt="o", color=color, capsize=4, ms=5, label=label)
            _hollow(ax, [where[k] for k in stale], [mean[k] for k in stale], color, 5)
            continue
        dashed = "--" if stale else "-"
        ax.plot(line.x, mean, marker="o", ms=3.5, lw=1.6, ls=dashed, color=color, label=label)
        _hollow(ax, [line.x[k] for k in stale], [mean[k] for k in stale], color, 3.5)
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(line.x, low, high, color=color, alpha=0.2, lw=0)
    if any(any(s.outdated) for s in lines.series):
        _note(ax, "hollow: outdated" if lines.categorical else "dashed, hollow: outdated")
    xs = [v for s in lines.series for v in s.x if v is not None]
    ys = [m for s in lines.series for m in s.mean if m is not None]
    if lines.categorical:
        ax.set_xticks(range(len(categories)), categories)
        if style.logx:
            msg = f"--logx: {lines.x} holds text, which has no log scale"
            raise UsageError(msg)
    elif _log(lines.x, xs, style.logx, "--logx"):
        ax.set_xscale("log")
    elif xs and all(isinstance(v, int) for v in xs):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps: no tick at 2.5
    if _log(lines.y, ys, style.logy or None, "--logy"):
        ax.set_yscale("log")
    ax.set_xlabel(lines.x if style.xlabel is None else style.xlabel)
    band = f" (mean ± std over {', '.join(lines.over)})" if lines.over else ""
    ax.set_ylabel(f"{lines.y}{band}" if style.ylabel is None else style.ylabel)
    ax.set_title(lines.title if style.title is None else style.title)
    _dress(ax)
    if scale is not None:
        fig.colorbar(scale, ax=ax, label=lines.legend)
    elif len(lines.series) > MAX_INSIDE:
        columns = -(-len(lines.series) // 25)
        fig.legend(
            title=lines.legend,
            frameon=False,
            fontsize="x-small",
            ncols=columns,
            loc="outside right upper",
        )
    elif any(s.label for s in lines.series):
        ax.legend(title=lines.legend, frameon=False, fontsize="small")
    return fig


def _hollow(ax: Any, xs: list[Any], ys: list[float], color: Any, size: float) -> None:
    """Draw the points ``xs, ys`` hollow: made by an earlier version of the code."""
    if xs:
        ax.plot(xs, ys, ls="none", marker="o", ms=size + 1, mfc="white", mec=color, mew=1.2)


def _dress(ax: Any) -> None:
    ax.grid(alpha=0.3, lw=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _log(name: str, values: list[Any], asked: bool | None, option: str) -> bool:
    """Whether an axis is drawn in log scale: as asked, else when its values are positive
    and span a factor of 50 or more (a grid like 1e-4, 1e-3, 1e-2)."""
    positive = bool(values) and min(values) > 0
    if asked is None:
        return positive and max(values) / min(values) >= 50
    if asked and not positive:
        low = min(values) if values else None
        msg = f"{option}: {name} has values down to {low!r}, and a log axis needs them above 0"
        raise UsageError(msg)
    return asked


def svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to put inside an HTML page (no XML prologue)."""
    from matplotlib import rc_context

    out = io.StringIO()
    with rc_context(PLAIN_TEXT):
        fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]


def save(fig: Figure, path: str, fmt: str, title: str) -> None:
    """Write the figure: PNG at 200 dpi, SVG, PDF with embedded fonts, or an HTML page."""
    from matplotlib import rc_context

    if fmt == "html":
        with open(path, "w", encoding="utf-8") as f:
            f.write(_page(title, svg(fig)))
        return
    with rc_context({"pdf.fonttype": 42, "svg.fonttype": "path", **PLAIN_TEXT}):
        if fmt == "png":
            fig.savefig(path, format="png", dpi=200)
        else:
            fig.savefig(
                path,
                format=fmt,
                metadata={"CreationDate": None} if fmt == "pdf" else {"Date": None},
            )


# Wheel to zoom, drag to pan, double-click to reset: on the SVG's viewBox, nothing fetched.
ZOOM_SCRIPT = """
document.querySelectorAll("figure.plot svg").forEach(function (svg) {
  var box0 = svg.viewBox.baseVal, start = [box0.x, box0.y, box0.width, box0.height];
  var drag = null;
  function box() { var b = svg.viewBox.baseVal; return [b.x, b.y, b.width, b.height]; }
  function set(b) { svg.setAttribute("viewBox", b.join(" ")); }
  function at(e) {
    var r = svg.getBoundingClientRect(), b = box();
    return [b[0] + (e.clientX - r.left) / r.width * b[2],
            b[1] + (e.clientY - r.top) / r.height * b[3]];
  }
  svg.addEventListener("wheel", function (e) {
    e.preventDefault();
    var k = e.deltaY > 0 ? 1.15 : 1 / 1.15, p = at(e), b = box();
    set([p[0] - (p[0] - b[0]) * k, p[1] - (p[1] - b[1]) * k, b[2] * k, b[3] * k]);
  });
  svg.addEventListener("mousedown", function (e) { drag = at(e); });
  window.addEventListener("mouseup", function () { drag = null; });
  svg.addEventListener("mousemove", function (e) {
    if (!drag) return;
    var p = at(e), b = box();
    set([b[0] - (p[0] - drag[0]), b[1] - (p[1] - drag[1]), b[2], b[3]]);
  });
  svg.addEventListener("dblclick", function () { set(start); });
});
"""


def _page(title: str, figure_svg: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }}
figure.plot svg {{ width: 100%; max-width: 960px; height: auto; cursor: grab; }}</style>
</head><body>
<figure class="plot">{figure_svg}
<figcaption>Wheel to zoom, drag to move, double-click to reset.</figcaption></figure>
<script>{ZOOM_SCRIPT}</script>
</body></html>
"""
