"""The page: one template, its script and style, and Plotly's own bundle, put together.

The same page is served by ``experiment view`` (its data fetched from the server, which
it polls for new rows) and written by ``experiment report`` (its data and every script
inlined, so the file opens from disk and asks for nothing). The page puts every value
and name in the document as text (``textContent``), never as markup.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

#: The extra the page needs, as the message for its absence says it.
EXTRA = "pip install 'superparams[view]'"


def require(command: str) -> None:
    """Check that the ``view`` extra is installed.

    Raises:
        UsageError: it is not; the message gives the pip line.
    """
    import importlib

    from superparams.errors import UsageError

    needed = ("plotly",) if command == "report" else ("plotly", "starlette", "uvicorn")
    missing = []
    for name in needed:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        msg = (
            f"experiment {command} needs {', '.join(missing)}, which {verb} not installed: {EXTRA}"
        )
        raise UsageError(msg)


def plotly_js() -> str:
    """Plotly's JavaScript bundle, as the plotly package ships it (never a CDN's)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def _own(name: str) -> str:
    return resources.files("superparams._view").joinpath(name).read_text(encoding="utf-8")


def _json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<`` can end it or open a comment."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("<", "\\u003c")


def page(title: str, config: dict[str, Any], *, data: Any = None, plotly: str | None = None) -> str:
    """The page's HTML. With ``data``, the data is in the page; with ``plotly`` (the
    bundle's text), Plotly is too: the page then needs nothing but itself. Without, the
    page loads Plotly from the address ``config["plotly"]`` names, beside it."""

    if plotly is None:
        library = ""  # the page loads it from config["plotly"], once its table is painted
    else:
        # As text the page runs once its table is painted; it holds no "</script".
        if "</script" in plotly.lower():
            msg = "the Plotly bundle holds '</script' and cannot be inlined"
            raise RuntimeError(msg)
        library = f"<script id='sp-plotly' type='text/plain'>{plotly}</script>"
    parts = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<link rel='icon' href='data:,'>",  # no request for /favicon.ico (it has no token)
        f"<title>{escape(title)}</title>",
        f"<style>{_own('page.css')}</style></head><body>",
        _own("page.html"),
        f"<script id='sp-config' type='application/json'>{_json(config)}</script>",
        ""
        if data is None
        else f"<script id='sp-data' type='application/json'>{_json(data)}</script>",
        library,
        f"<script>{_own('page.js')}</script>",
        "</body></html>\n",
    ]
    return "".join(parts)
