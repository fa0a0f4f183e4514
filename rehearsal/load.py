"""The tracking API under load, as users load it: what sign-in costs (issue 21, item 7).

``measure(label, base_url, auth, pids, *, clients=8, seconds=20.0, host=None, resolve=None,
ssl_context=None, max_requests=200_000, timeout=30.0)`` -> ``Figures``:

- Set-up, not timed: one experiment (``experiments/create``, a new name each time) and one run per
  client in it (``runs/create``). If any of these fails, nothing is loaded: the figures carry the
  failure in ``problem`` (no exception; a wrong password or an unreachable server is a result).
- Then ``clients`` threads, each on its own keep-alive connection, repeat for ``seconds``: log a
  metric (``runs/log-metric``, one step further each time), log a parameter (``runs/log-parameter``,
  a new key each time, as parameters cannot change), log a batch of three metrics
  (``runs/log-batch``) and read the run back (``runs/get``). Every request is timed. The loop stops
  at the deadline or after ``max_requests`` requests in all, whichever comes first. A request waits
  at most ``timeout`` seconds for each socket operation (connect, send, each read; a timeout is an
  error); the clients are waited for until ``seconds`` + 3 x ``timeout`` + 5 s at most, and one
  still waiting then (a server that drips its answer) is counted as an error and left behind (a
  daemon thread that stops after that request), so ``measure`` returns in bounded time.
- ``auth`` (user, password) adds a basic ``Authorization`` header to every request, ``host``
  replaces the ``Host`` header (the rehearsal's nginx refuses a Host it does not serve; default:
  ``base_url``'s host and port).
- ``resolve``: the address to connect to instead of resolving ``base_url``'s host name, as
  ``curl --resolve`` (the load balancer's custom host on 127.0.0.1): the ``Host`` header, TLS's
  server name and the certificate check still use the name. ``ssl_context`` checks the server's
  certificate for an https ``base_url`` (default: the system's CAs).
- Errors (a status outside 2xx, a timeout, a refused or dropped connection) are counted by kind,
  never raised; a connection that failed is replaced by a new one for the next request.

``Figures``:

- ``requests``: the requests of the loop that completed or failed; ``errors`` of them failed
  (``error_kinds``: how many of each kind, e.g. ``("HTTP 500", 3)``).
- ``seconds``: from the start of the loop until the last client finished (its last request may end
  after the deadline); ``rps``: successful requests per second of that time.
- ``p50_ms``, ``p95_ms``: latency of the successful requests, from
  ``statistics.quantiles(..., n=100, method="inclusive")`` (linear interpolation between the two
  nearest ranks, numpy's default); NaN when nothing succeeded.
- ``cpu_seconds``: user + system CPU the server's processes spent during the loop, from
  ``/proc/<pid>/stat`` (utime + stime, in ``os.sysconf("SC_CLK_TCK")`` ticks: 10 ms each);
  ``cpu_ms_per_request`` divides it by the successful requests. ``pids()`` (the server's process
  tree) is called before the loop and after it; every process of either list is read once at the
  end and counted from its reading before the loop, or from zero if it appeared since (a process
  is told apart from a later one with the same pid by its start time). Caveat: a process that
  exited before the end is not counted at all after its first reading, and one that both appeared
  and exited during the loop is missed, so the figure is a lower bound when the server forks
  short-lived processes (MLflow's workers live as long as the server).

The load generator runs on the same machine as the server and takes CPU of its own, about 0.4-0.6 ms
a request (measured against the tests' stub): on a machine with few cores it takes a little from
the server, in proportion to the requests served. Single requests take the same time through it as
through curl on one keep-alive connection.

``compare(rows)``: a Markdown table of rows (as ``ops bench`` prints its own), each row's throughput
against the first row's (``throughput_ratio``).
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import re
import socket
import ssl
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

API = "/api/2.0/mlflow"
TIMEOUT_SECONDS = 30.0
MAX_REQUESTS = 200_000
JOIN_GRACE_SECONDS = 5.0
BATCH_METRICS = 3


@dataclass(frozen=True)
class Figures:
    label: str
    clients: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p95_ms: float
    cpu_seconds: float
    cpu_ms_per_request: float
    error_kinds: tuple[tuple[str, int], ...] = ()
    problem: str = ""  # set when the load could not run (set-up failed); the figures are then empty

    @property
    def ok(self) -> bool:
        """Loaded, and every request succeeded."""
        return not self.problem and self.errors == 0 and self.requests > 0

    def line(self) -> str:
        """One human line."""
        if self.problem:
            return f"{self.label}: not measured: {self.problem}"
        kinds = ", ".join(f"{kind} x{count}" for kind, count in self.error_kinds)
        return (
            f"{self.label}: {self.rps:.1f} req/s, p50 {_ms(self.p50_ms)} ms, p95 {_ms(self.p95_ms)} ms, "
            f"server CPU {_ms(self.cpu_ms_per_request, 1)} ms/request ({self.requests} requests, "
            f"{self.errors} errors{f' ({kinds})' if kinds else ''}, {self.clients} clients, "
            f"{self.seconds:.1f} s, {self.cpu_seconds:.1f} CPU s)"
        )


def throughput_ratio(row: Figures, base: Figures) -> float:
    """``row``'s requests per second over ``base``'s; NaN when ``base`` served none."""
    return row.rps / base.rps if base.rps > 0 else math.nan


def compare(rows: Sequence[Figures]) -> str:
    """A Markdown table: each row's throughput, its ratio to the first row's, latency, server CPU."""
    if not rows:
        return ""
    base = rows[0]
    lines = [
        f"| case | req/s | vs {base.label} | p50 (ms) | p95 (ms) | server CPU (ms/request) "
        "| requests | errors | clients, s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.problem:
            lines.append(
                f"| {row.label} | - | - | - | - | - | - | {row.errors} | not measured: {row.problem} |"
            )
            continue
        ratio = throughput_ratio(row, base)
        lines.append(
            f"| {row.label} | {row.rps:.1f} | {'-' if math.isnan(ratio) else f'{ratio:.2f}x'} "
            f"| {_ms(row.p50_ms)} | {_ms(row.p95_ms)} | {_ms(row.cpu_ms_per_request, 1)} "
            f"| {row.requests} | {row.errors} | {row.clients}, {row.seconds:.1f} |"
        )
    return "\n".join(lines)


def _ms(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def percentiles(latencies: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) of ``latencies`` (see the module's docstring); NaN, NaN for none."""
    if not latencies:
        return math.nan, math.nan
    if len(latencies) == 1:
        return latencies[0], latencies[0]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[94]


# --- server CPU --------------------------------------------------------------------------------
# /proc/<pid>/stat after the ")" that ends the command name: field 3 (state) is index 0.
UTIME, STIME, STARTTIME = 11, 12, 19


def _stat(pid: int) -> tuple[int, int] | None:
    """(start time, utime + stime) of ``pid`` in clock ticks; None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[STARTTIME]), int(fields[UTIME]) + int(fields[STIME])


def cpu_snapshot(pids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """pid -> (start time, CPU ticks) for each of ``pids`` still alive."""
    out = {}
    for pid in pids:
        found = _stat(pid)
        if found is not None:
            out[pid] = found
    return out


def cpu_seconds(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> float:
    """CPU spent between two snapshots: each process in ``after`` from its reading in ``before``,
    or from zero when it was not there (or was another process with the same pid)."""
    ticks = 0
    for pid, (started, cpu) in after.items():
        prior = before.get(pid)
        ticks += cpu - (prior[1] if prior is not None and prior[0] == started else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


# --- HTTP --------------------------------------------------------------------------------------
class _RequestError(Exception):
    """A request that did not succeed; ``kind`` is how it is counted."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}{f': {detail}' if detail else ''}")
        self.kind = kind


class _HTTPAt(http.client.HTTPConnection):
    """HTTP to ``address`` for a URL whose host name is another (``resolve``)."""

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _HTTPSAt(http.client.HTTPSConnection):
    """HTTPS to ``address``, the certificate checked against the URL's host name (and sent as SNI)."""

    def __init__(
        self, host: str, port: int | None, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address, self.tls = address, context

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


@dataclass
class _Client:
    """One user: a keep-alive connection to the server, replaced after a failure."""

    url: SplitResult
    headers: dict[str, str]
    timeout: float
    resolve: str | None = None
    ssl_context: ssl.SSLContext | None = None
    _conn: http.client.HTTPConnection | None = field(default=None, init=False)

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self.url.hostname or "", self.url.port
        address = self.resolve or host
        if self.url.scheme == "https":
            return _HTTPSAt(
                host, port, address, self.timeout, self.ssl_context or ssl.create_default_context()
            )
        return _HTTPAt(host, port, address, self.timeout)

    def call(self, method: str, endpoint: str, body: dict[str, Any] | None = None) -> bytes:
        """The response body of a 2xx answer; ``_RequestError`` otherwise."""
        path = self.url.path.rstrip("/") + API + endpoint
        data = json.dumps(body).encode() if body is not None else None
        conn = self._conn or self._connect()
        self._conn = conn
        try:
            conn.request(method, path, body=data, headers=self.headers)
            response = conn.getresponse()
            payload = response.read()
        except TimeoutError:
            self.close()
            raise _RequestError("timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise _RequestError(type(exc).__name__, str(exc)) from None
        if response.will_close:
            self.close()
        if not 200 <= response.status < 300:
            raise _RequestError(f"HTTP {response.status}", payload[:200].decode(errors="replace"))
        return payload

    def json(self, method: str, endpoint: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = self.call(method, endpoint, body)
        try:
            found = json.loads(payload)
        except ValueError:
            raise _RequestError("not JSON", payload[:200].decode(errors="replace")) from None
        if not isinstance(found, dict):
            raise _RequestError("not a JSON object", payload[:200].decode(errors="replace"))
        return found

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _headers(url: SplitResult, auth: tuple[str, str] | None, host: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    # http.client sends this one instead of its own when it is given.
    headers["Host"] = host if host is not None else url.netloc.rsplit("@", 1)[-1]
    return headers


def _now_ms() -> int:
    return int(time.time() * 1000)


def _user_step(client: _Client, run_id: str, step: int, op: int) -> None:
    """Request ``op`` (0-3) of a user's iteration ``step``."""
    if op == 0:
        client.call(
            "POST",
            "/runs/log-metric",
            {
                "run_id": run_id,
                "key": "loss",
                "value": 1.0 / (step + 1),
                "timestamp": _now_ms(),
                "step": step,
            },
        )
    elif op == 1:
        client.call("POST", "/runs/log-parameter", {"run_id": run_id, "key": f"p{step}", "value": str(step)})
    elif op == 2:
        now = _now_ms()
        metrics = [
            {"key": f"m{k}", "value": float(step * k), "timestamp": now, "step": step}
            for k in range(BATCH_METRICS)
        ]
        client.call("POST", "/runs/log-batch", {"run_id": run_id, "metrics": metrics})
    else:
        client.call("GET", "/runs/get?" + urlencode({"run_id": run_id}))


OPS_PER_STEP = 4


@dataclass
class _Tally:
    """What one client saw; each client writes only its own."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class _Budget:
    """The loop's bounds, shared by the clients: a deadline and a number of requests."""

    deadline: float
    left: int
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0 or time.monotonic() >= self.deadline:
                return False
            self.left -= 1
            return True


def _user(client: _Client, run_id: str, budget: _Budget, tally: _Tally) -> None:
    n = 0
    try:
        while budget.take():
            start = time.perf_counter()
            try:
                _user_step(client, run_id, n // OPS_PER_STEP, n % OPS_PER_STEP)
            except _RequestError as failed:
                tally.errors[failed.kind] += 1
            else:
                tally.latencies.append(time.perf_counter() - start)
            n += 1
    finally:
        client.close()


def _set_up(client: _Client, label: str, clients: int) -> list[str]:
    """An experiment and one run per client in it: their run ids (``_RequestError`` if any failed)."""
    name = f"load-{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}-{uuid.uuid4().hex[:12]}"
    experiment = client.json("POST", "/experiments/create", {"name": name}).get("experiment_id")
    if not isinstance(experiment, str):
        raise _RequestError("experiments/create", "answer has no experiment_id")
    runs = []
    for k in range(clients):
        found = client.json(
            "POST",
            "/runs/create",
            {"experiment_id": experiment, "start_time": _now_ms(), "run_name": f"user-{k}"},
        )
        run_id = found.get("run", {}).get("info", {}).get("run_id")
        if not isinstance(run_id, str):
            raise _RequestError("runs/create", "answer has no run.info.run_id")
        runs.append(run_id)
    return runs


def measure(
    label: str,
    base_url: str,
    auth: tuple[str, str] | None,
    pids: Callable[[], list[int]],
    *,
    clients: int = 8,
    seconds: float = 20.0,
    host: str | None = None,
    resolve: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    max_requests: int = MAX_REQUESTS,
    timeout: float = TIMEOUT_SECONDS,
) -> Figures:
    """Load ``base_url`` (e.g. ``http://127.0.0.1:8080``) as ``clients`` users for ``seconds``
    (see the module's docstring); ``pids()``: the server's processes, for its CPU."""
    if clients < 1 or seconds <= 0 or max_requests < 1 or timeout <= 0:
        raise ValueError(
            f"load: clients {clients}, seconds {seconds}, max_requests {max_requests}, timeout {timeout}"
        )
    url = urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"load: base_url must be http(s)://host[:port][/path], got {base_url!r}")
    headers = _headers(url, auth, host)

    def empty(problem: str, errors: int) -> Figures:
        return Figures(
            label, clients, 0.0, 0, errors, 0.0, math.nan, math.nan, 0.0, math.nan, problem=problem
        )

    setup = _Client(url, headers, timeout, resolve, ssl_context)
    try:
        runs = _set_up(setup, label, clients)
    except _RequestError as failed:
        return empty(f"set-up failed: {failed}", 1)
    finally:
        setup.close()

    tallies = [_Tally() for _ in runs]
    before_pids = pids()
    before = cpu_snapshot(before_pids)
    start = time.monotonic()
    budget = _Budget(start + seconds, max_requests)
    threads = [
        threading.Thread(
            target=_user,
            args=(_Client(url, headers, timeout, resolve, ssl_context), run_id, budget, tally),
            daemon=True,
        )
        for run_id, tally in zip(runs, tallies, strict=True)
    ]
    for thread in threads:
        thread.start()
    give_up = start + seconds + timeout * 3 + JOIN_GRACE_SECONDS  # connect, send, read: each bounded
    for thread in threads:
        thread.join(max(0.0, give_up - time.monotonic()))
    elapsed = time.monotonic() - start
    after = cpu_snapshot(set(before_pids) | set(pids()))
    stuck = sum(thread.is_alive() for thread in threads)

    latencies = [x for tally in tallies for x in list(tally.latencies)]
    kinds: Counter[str] = Counter()
    for tally in tallies:
        kinds.update(dict(tally.errors))
    if stuck:
        kinds[f"client still waiting at {elapsed:.0f} s"] += stuck
    errors = sum(kinds.values())
    p50, p95 = percentiles(latencies)
    cpu = cpu_seconds(before, after)
    return Figures(
        label=label,
        clients=clients,
        seconds=elapsed,
        requests=len(latencies) + errors,
        errors=errors,
        rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=p50 * 1000,
        p95_ms=p95 * 1000,
        cpu_seconds=cpu,
        cpu_ms_per_request=cpu * 1000 / len(latencies) if latencies else math.nan,
        error_kinds=tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
