"""``experiment view EXPERIMENT``: a live page of the results, on 127.0.0.1, until Ctrl-C.

It reads the store without its lock and writes nothing in it (see
:mod:`superparams._view._server`). Needs the ``view`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from superparams._cli._shared import say

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._cli._requests import Request
    from superparams._space import Space


def view(found: Found, spaces: list[Space[Any]], request: Request, prog: str) -> None:
    from superparams._view._page import require

    require("view")
    from superparams._view._server import serve

    serve(spaces, found.name, say)


def report_page(found: Found, spaces: list[Space[Any]]) -> str:
    """The page of ``experiment report``: the view's, its data and scripts inlined."""
    from datetime import datetime, timezone

    from superparams._view._data import read
    from superparams._view._page import page, plotly_js, require
    from superparams._view._server import current_code

    require("report")
    from superparams._view._data import payload

    experiments, logs = [], {}
    for k, space in enumerate(spaces):
        store, table = read(space)
        experiments.append(payload(space, table, current_code=current_code(space)))
        logs[str(k)] = _logs(store, table)
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    config = {"live": False, "made": made, "title": found.name}
    data = {"version": 0, "experiments": experiments, "logs": logs}
    return page(f"{found.name}: report", config, data=data, plotly=plotly_js())


#: The report holds the end of the logs of at most this many settings (failed ones first).
REPORT_LOGS = 200
#: The end of each log the report holds, in bytes.
REPORT_LOG_TAIL = 16 * 1024


def _logs(store: Any, table: Any) -> dict[str, str]:
    """The end of the logs of the settings that did not complete (then of the others),
    each read as a regular file of the results folder."""
    import os

    import polars as pl

    from superparams._store._layout import open_in_store

    if table.is_empty():
        return {}
    last = table.group_by("id", maintain_order=True).agg(pl.col("status").last())
    ordered = last.sort(pl.col("status") == "completed", maintain_order=True)["id"].to_list()
    out = {}
    for sid in ordered[:REPORT_LOGS]:
        try:
            with os.fdopen(open_in_store(store.log_path(sid), os.O_RDONLY), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - REPORT_LOG_TAIL))
                out[sid] = f.read().decode("utf-8", "replace")
        except OSError:  # none, or not a regular file of the folder
            continue
    return out
