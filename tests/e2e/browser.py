"""A real headless Chromium, driven over the DevTools protocol on a pipe.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands on fd 3 and
writes replies and events on fd 4, each message JSON ended by a NUL byte. No port is
opened, so nothing else on the machine can talk to it, and nothing waits for a port. The
page's console, uncaught exceptions, log entries and every request it makes arrive as
events, which :class:`Page` keeps, so a test can say the page made no request at all.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def chromium() -> str:
    """The Chromium to test in; skipped when there is none, unless CI requires one."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("SUPERPARAMS_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


class Page:
    """One tab of the browser; what it said and asked for since it opened."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.console: list[str] = []  # errors: console.error, exceptions, log entries
        self.requests: list[str] = []  # the URL of every request the page made

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def on(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console.append(details.get("exception", {}).get("description", details["text"]))
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.console.append(" ".join(str(a.get("value")) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.console.append(params["entry"]["text"])
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])

    def open(self, url: str, timeout: float = 30) -> None:
        """Go to ``url`` and wait until its load event, then a moment for late requests."""
        self.send("Page.navigate", url=url)
        self.browser.wait_for("Page.loadEventFired", self.session, timeout)
        self.browser.drain(0.5)

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise AssertionError(reply["exceptionDetails"])
        return reply["result"].get("value")

    def screenshot(self) -> bytes:
        """The whole page as a PNG."""
        reply = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(reply["data"])


class Browser:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.ids = itertools.count(1)
        self.buffer = b""
        self.pages: dict[str, Page] = {}
        self.waiting: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any], session: str | None = None) -> Any:
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\0")
        self.process.stdin.flush()
        deadline = time.monotonic() + 30
        while True:
            reply = self._next(deadline - time.monotonic())
            if reply is None:
                raise TimeoutError(f"no reply to {method}")
            if reply.get("id") == number:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]

    def wait_for(self, event: str, session: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline - time.monotonic())
            if message is None:
                raise TimeoutError(f"no {event} in {timeout}s")
            if message.get("method") == event and message.get("sessionId") == session:
                return message

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._next(deadline - time.monotonic()) is not None:
            pass

    def _next(self, timeout: float) -> dict[str, Any] | None:
        """The next message from the browser (events go to their page), or None in time."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + max(timeout, 0)
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed its pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        page = self.pages.get(message.get("sessionId", ""))
        if page is not None and "method" in message:
            page.on(message)
        return message

    def page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = self.pages[session["sessionId"]] = Page(self, session["sessionId"])
        for domain in ("Runtime", "Log", "Network", "Page"):
            page.send(f"{domain}.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            width=1100,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        return page


@contextmanager
def browser(profile: Path) -> Iterator[Browser]:
    """Chromium, headless, as root (--no-sandbox), its protocol on stdin and stdout.

    A shell moves the pipes to fds 3 and 4, where --remote-debugging-pipe looks.
    """
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
    ]
    with open(profile.parent / "chromium.err", "wb") as err:
        process = subprocess.Popen(
            ["sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', "sh", *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    driven = Browser(process)
    try:
        yield driven
    finally:
        with contextlib.suppress(Exception):  # it may be gone already
            driven.send("Browser.close", {})
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
