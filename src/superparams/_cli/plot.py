"""``experiment plot EXPERIMENT --x COL --y METRIC``: a metric against a column, to a file.

Needs the ``plot`` extra (matplotlib); without it, the line that installs it, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams._cli._find import shown
from superparams._cli._requests import plot_format
from superparams._cli._shared import none_stored, only_one, results_of, say
from superparams.errors import UsageError

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._cli._requests import PlotRequest
    from superparams._space import Space


def plot(found: Found, spaces: list[Space[Any]], request: PlotRequest, prog: str) -> None:
    only_one(found, spaces, "plot")
    assert request.x is not None  # the request checked both
    assert request.y is not None
    out = request.out or f"{request.y}-by-{request.x}.png"
    fmt = plot_format(out, "--out")
    path = Path(out)
    if not path.parent.is_dir():
        msg = f"--out {out!r}: the folder {str(path.parent)!r} does not exist; make it first"
        raise UsageError(msg)
    from superparams._cli._draw import (
        Style,
        cells,
        figure,
        heatmap,
        lines,
        require_matplotlib,
        save,
    )

    require_matplotlib("plot")
    space = spaces[0]
    table = results_of(space)
    if table.is_empty():
        raise UsageError(none_stored(space, prog, found))
    style = Style(
        request.title, request.xlabel, request.ylabel, request.logx, request.logy, request.size
    )
    name = space.experiment_class.__name__
    if request.heatmap is not None:
        grid = cells(space, request.x, request.heatmap, request.y, request.over, table)
        if any(m is not None for row in grid.mean for m in row):
            about = f"{request.y} by {request.x} and {request.heatmap}"
            save(heatmap(grid, style), out, fmt, f"{name}: {about}")
            say(f"wrote {shown(path)}")
            return
    else:
        drawn = lines(space, request.x, request.y, request.hue, request.over, table)
        if any(m is not None for s in drawn.series for m in s.mean):
            save(figure(drawn, style), out, fmt, f"{name}: {request.y} by {request.x}")
            say(f"wrote {shown(path)}")
            return
    msg = f"no completed setting of {name} has a value of {request.y!r} to plot"
    raise UsageError(msg)
