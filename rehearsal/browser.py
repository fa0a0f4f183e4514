"""Headless Chromium opening a page the way a user's browser does: ``https://<custom host>/...``,
the name resolved to the rehearsal's load balancer (rehearsal.servers.LoadBalancer) and nothing
else resolved, so no request can leave 127.0.0.1.

Sign-in is what a person does at the browser's Basic prompt: Chromium is driven over the DevTools
protocol (``--remote-debugging-pipe``: JSON messages on file descriptors 3 and 4, no extra
package), and each authentication challenge is answered with the user's name and password (or
cancelled, for a visitor without credentials). Credentials in the URL would not do: the page's own
``fetch`` calls refuse a base URL that carries them.

The load balancer's certificate is signed by the rehearsal's CA, which this throw-away profile does
not trust: certificate errors are ignored (what is rehearsed is the path and the sign-in, not ACM)."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",
    "--window-size=1400,900",
    "--remote-debugging-pipe",
)
PAGE_TIMEOUT = 90.0
MAX_CHALLENGES = 20  # a password that is refused is not offered forever


@dataclass
class Visit:
    """What a page showed: its DOM once ``wait_for`` appeared (or at the deadline), a screenshot,
    the challenges answered and every response status by URL path."""

    dom: str = ""
    challenges: int = 0
    statuses: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0


class _Pipe:
    """The DevTools protocol over Chromium's pipe: one NUL-terminated JSON message per command."""

    def __init__(self, host: str, port: int, profile: str) -> None:
        to_chrome_r, self._write = os.pipe()
        self._read, from_chrome_w = os.pipe()
        # Chromium's ends above 9 first, so that moving them to 3 and 4 cannot close one another.
        to_chrome_r, from_chrome_w = (_high(fd) for fd in (to_chrome_r, from_chrome_w))
        rules = f"--host-resolver-rules=MAP {host} 127.0.0.1:{port}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
        argv = [CHROMIUM, *FLAGS, rules, f"--user-data-dir={profile}", "about:blank"]
        # Chromium reads commands from fd 3 and writes answers to fd 4.
        shell = f'exec 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-; exec "$@"'
        self.proc = subprocess.Popen(
            ["bash", "-c", shell, "chromium", *argv],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        return self._next_id

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                return None
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        found: dict[str, Any] = json.loads(raw)
        return found

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        """Send a command and wait for its answer (events meanwhile are kept in ``events``)."""
        ident = self.send(method, params, session)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = self.receive(deadline - time.monotonic())
            if message is None:
                break
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)
        raise TimeoutError(f"{method}: no answer from Chromium within 30 s")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        os.close(self._write)
        os.close(self._read)


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


def visit(
    host: str,
    port: int,
    url: str,
    *,
    credentials: tuple[str, str] | None,
    wait_for: str,
    screenshot: Path | None = None,
    timeout: float = PAGE_TIMEOUT,
) -> Visit:
    """Open ``url`` (``host`` resolves to 127.0.0.1:``port``), answer each sign-in challenge with
    ``credentials`` (None: cancel it), wait until the page's DOM contains ``wait_for``."""
    result = Visit()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rehearsal-chromium-") as profile:
        pipe = _Pipe(host, port, profile)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            pipe.call("Network.enable", session=session)
            pipe.call("Fetch.enable", {"handleAuthRequests": True}, session=session)
            pipe.call("Page.enable", session=session)
            pipe.send("Page.navigate", {"url": url}, session=session)
            deadline, next_look = start + timeout, time.monotonic() + 2
            while time.monotonic() < deadline:
                message = pipe.events.pop(0) if pipe.events else pipe.receive(0.5)
                if message is not None:
                    _handle(pipe, session, message, credentials, result)
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + 1
                    result.dom = _dom(pipe, session)
                    if wait_for in result.dom:
                        break
            if screenshot is not None:
                shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session=session)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
        finally:
            pipe.close()
    result.seconds = time.monotonic() - start
    return result


def _dom(pipe: _Pipe, session: str) -> str:
    found = pipe.call(
        "Runtime.evaluate",
        {"expression": "document.documentElement.outerHTML", "returnByValue": True},
        session=session,
    )
    return str(found.get("result", {}).get("value", ""))


def _handle(
    pipe: _Pipe, session: str, message: dict[str, Any], credentials: tuple[str, str] | None, result: Visit
) -> None:
    method, params = message.get("method"), message.get("params", {})
    if method == "Fetch.requestPaused":
        pipe.send("Fetch.continueRequest", {"requestId": params["requestId"]}, session=session)
    elif method == "Fetch.authRequired":
        result.challenges += 1
        if credentials is None or result.challenges > MAX_CHALLENGES:
            answer: dict[str, Any] = {"response": "CancelAuth"}
        else:
            answer = {
                "response": "ProvideCredentials",
                "username": credentials[0],
                "password": credentials[1],
            }
        pipe.send(
            "Fetch.continueWithAuth",
            {"requestId": params["requestId"], "authChallengeResponse": answer},
            session=session,
        )
    elif method == "Network.responseReceived":
        response = params["response"]
        result.statuses.append((int(response["status"]), str(response["url"])))
