"""The local server of ``experiment view``: the page, its data, and the rows a run adds.

Starlette on uvicorn, on 127.0.0.1 and a port the system picks. Every request must carry
the random token of the address it printed (as Jupyter does): other users of the machine
can reach loopback too, and a request without it is refused (403). It serves the page,
Plotly's bundle from the plotly package, the data of each experiment, and a setting's
log, opened as a regular file of the results folder and named only by a stored setting's
id: no path is ever taken from a request. It never takes the store's lock and never
writes in the results folder: a thread follows each store's record
(:class:`~superparams._store._read.Follower`) every second.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from typing import TYPE_CHECKING, Any

from superparams._space import setting_ids
from superparams._view._data import payload, read

if TYPE_CHECKING:
    import polars as pl

    from superparams._space import Space
    from superparams._store._read import Reader

#: How often the record is read for new lines, in seconds.
POLL = 0.4
#: The end of a log the page shows, in bytes.
LOG_TAIL = 256 * 1024


class _Followed:
    """One experiment's rows, kept up to date with its record."""

    def __init__(self, space: Space[Any]) -> None:
        from superparams._store._read import Follower

        self.space = space
        self.ids = set(setting_ids(space)) if space.enumerable else None
        self.code = current_code(space)
        self.follower: Follower
        self.store: Reader
        self.table: pl.DataFrame
        self.touched: dict[str, int] = {}
        self.payload: dict[str, Any] = {}
        self.reload(0)

    def reload(self, version: int) -> None:
        from superparams._store._read import Follower

        self.store, self.table = read(self.space)
        # From where results.parquet ends: the settings still open are known from here
        # on, and what was recorded since the table was read is merged into it.
        self.follower = Follower(self.store)
        self._merge(self.follower.poll()[0], version)
        self.payload = payload(self.space, self.table, current_code=self.code)
        self.reloaded = version

    def update(self, version: int) -> bool:
        """Read what the record gained; whether anything changed."""
        latest, replaced = self.follower.poll()
        if replaced:
            self.reload(version)
            return True
        if not self._merge(latest, version):
            return False
        self.payload = payload(self.space, self.table, current_code=self.code)
        return True

    def _merge(self, latest: dict[str, list[dict[str, Any]]], version: int) -> bool:
        """Put each setting's rows in ``latest`` in place of those the table has."""
        import polars as pl

        from superparams._store._table import concat, make_frame

        if self.ids is not None:
            latest = {sid: rows for sid, rows in latest.items() if sid in self.ids}
        if not latest:
            return False
        rows = [row for found in latest.values() for row in found]
        fresh = make_frame(rows, self.store.types, {})
        kept = self.table.filter(~pl.col("id").is_in(list(latest)))
        self.table = concat([kept, fresh], {}) if kept.height else fresh
        for sid in latest:
            self.touched[sid] = version
        return True

    def changes(self, since: int) -> dict[str, Any]:
        """What changed after ``since``: the meta of the payload, and the rows of the
        settings touched since (all of them if the folder was read afresh)."""
        import polars as pl

        from superparams._outdated import mark
        from superparams._view._data import split

        meta = {k: v for k, v in self.payload.items() if k not in ("settings", "series")}
        if self.reloaded > since:
            return {**self.payload, "reload": True}
        ids = [sid for sid, at in self.touched.items() if at > since]
        part = mark(self.table.filter(pl.col("id").is_in(ids)), self.code)
        payload = self.payload
        settings, series = split(
            part, payload["columns"], [*payload["steps"], *payload["metrics"]], payload["steps"]
        )
        return {**meta, "reload": False, "ids": ids, "settings": settings, "series": series}


def _encode(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str).encode()


def current_code(space: Space[Any]) -> str | None:
    """The version of the experiment's code now: rows of another are outdated."""
    from superparams._outdated import current_version

    return current_version(space.experiment_class)


class Live:
    """The experiments the page shows, followed by a thread, and the version of the
    data (it grows with each change)."""

    def __init__(self, spaces: list[Space[Any]]) -> None:
        self.followed = [_Followed(space) for space in spaces]
        self.version = 0
        self._encoded: tuple[int, bytes] | None = None
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, name="superparams-view", daemon=True)

    def _follow(self) -> None:
        while not self.stop.wait(POLL):
            with self.lock:
                for followed in self.followed:
                    try:
                        if followed.update(self.version + 1):
                            self.version += 1
                    except Exception:  # a half-written folder: next time
                        continue

    def data(self) -> bytes:
        """Every experiment's data as JSON, encoded once per version."""
        with self.lock:
            if self._encoded is None or self._encoded[0] != self.version:
                made = {"version": self.version, "experiments": [f.payload for f in self.followed]}
                self._encoded = (self.version, _encode(made))
            return self._encoded[1]

    def changes(self, since: int) -> dict[str, Any]:
        with self.lock:
            if since >= self.version:
                return {"version": self.version}
            return {
                "version": self.version,
                "experiments": [f.changes(since) for f in self.followed],
            }

    def log(self, index: int, sid: str) -> str | None:
        """The end of a stored setting's log, or None if it has none."""
        from superparams._store._layout import open_in_store

        with self.lock:
            if not 0 <= index < len(self.followed):
                return None
            followed = self.followed[index]
            if sid not in set(followed.table["id"].to_list()):
                return None
            path = followed.store.log_path(sid)
        try:
            with os.fdopen(open_in_store(path, os.O_RDONLY), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - LOG_TAIL))
                return f.read().decode("utf-8", "replace")
        except OSError:  # none, or not a regular file of the folder (a link, a FIFO)
            return None


def app(live: Live, token: str, title: str) -> Any:
    """The Starlette application: every route refuses a request without ``token``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from superparams._view._page import page, plotly_js

    bundle = plotly_js().encode()
    config = {"live": True, "plotly": f"plotly.min.js?token={token}", "title": title}
    html = page(title, config).encode()

    def allowed(request: Request) -> bool:
        given = request.query_params.get("token", "")
        return hmac.compare_digest(given.encode(), token.encode())

    refused = PlainTextResponse("403: this address needs the token it was printed with", 403)

    def index(request: Request) -> Response:
        if not allowed(request):
            return refused
        return Response(html, media_type="text/html; charset=utf-8", headers=_HEADERS)

    def plotly(request: Request) -> Response:
        if not allowed(request):
            return refused
        return Response(bundle, media_type="text/javascript", headers=_HEADERS)

    def data(request: Request) -> Response:
        if not allowed(request):
            return refused
        return Response(live.data(), media_type="application/json", headers=_HEADERS)

    def changes(request: Request) -> Response:
        if not allowed(request):
            return refused
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            since = 0
        return JSONResponse(live.changes(since), headers=_HEADERS)

    def log(request: Request) -> Response:
        if not allowed(request):
            return refused
        try:
            index = int(request.query_params.get("experiment", "0"))
        except ValueError:
            index = -1
        text = live.log(index, request.query_params.get("id", ""))
        if text is None:
            return PlainTextResponse("no log", 404, headers=_HEADERS)
        return PlainTextResponse(text, headers=_HEADERS)

    def anything(request: Request) -> Response:
        return refused if not allowed(request) else PlainTextResponse("not found", 404)

    routes = [
        Route("/", index),
        Route("/plotly.min.js", plotly),
        Route("/api/data", data),
        Route("/api/changes", changes),
        Route("/api/log", log),
        Route("/{rest:path}", anything),
    ]
    return Starlette(routes=routes)


# The page may load only from its own address, and never be framed by another page.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "worker-src 'self' blob:; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def serve(spaces: list[Space[Any]], title: str, say: Any) -> None:
    """Serve the page until interrupted (Ctrl-C), saying its address first."""
    import socket

    import uvicorn

    token = secrets.token_urlsafe(24)
    live = Live(spaces)
    live.data()  # encoded before the address is said: the first page asks for it at once
    application = app(live, token, title)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # before the address is said: a request then waits, never is refused
    port = sock.getsockname()[1]
    config = uvicorn.Config(application, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    live.thread.start()
    try:
        say(f"view of {title}: http://127.0.0.1:{port}/?token={token}")
        say("(Ctrl-C to stop)")
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it caught again, once stopped
        pass
    finally:
        live.stop.set()
        sock.close()
