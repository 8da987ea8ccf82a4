"""``experiment report EXPERIMENT``: one self-contained HTML file to share.

The page is the one ``experiment view`` serves (see :mod:`superparams._view`), frozen at
the time of writing: the results table, the learning curves, the metric against each
parameter, the heatmap and parallel coordinates, the failures with their tracebacks and
log tails, the code versions. Its data, its script and Plotly are inside it: it loads
nothing from anywhere, so it opens offline and can be mailed. Needs the ``view`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams._cli._find import shown
from superparams._cli._shared import say
from superparams.errors import UsageError

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._cli._requests import ReportRequest
    from superparams._space import Space


def report(found: Found, spaces: list[Space[Any]], request: ReportRequest, prog: str) -> None:
    out = Path(request.out or "report.html")
    if not out.parent.is_dir():
        msg = f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist; make it first"
        raise UsageError(msg)
    from superparams._cli.view import report_page

    out.write_text(report_page(found, spaces), encoding="utf-8")
    say(f"wrote {shown(out)}")
