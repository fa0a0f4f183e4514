"""The load generator of the rehearsal's sign-in cost step (rehearsal/load.py), against a stand-in
for MLflow's tracking API (tracking_stub.py) started as its own process on 127.0.0.1: what it
sends, what it counts, its bounds in time and requests, and the server CPU it attributes."""

from __future__ import annotations

import base64
import json
import math
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rehearsal import load, servers
from rehearsal.procs import free_port

pytestmark = pytest.mark.rehearsal

STUB = Path(__file__).with_name("tracking_stub.py")
START_TIMEOUT = 20.0
TICK = 1 / os.sysconf("SC_CLK_TCK")


class Stub:
    def __init__(self, proc: subprocess.Popen[str], port: int, https: bool) -> None:
        self.proc, self.port = proc, port
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{port}"
        self.tls = ssl.create_default_context()
        if https:  # the test's own look at what the stub saw: its certificate is for another name
            self.tls.check_hostname, self.tls.verify_mode = False, ssl.CERT_NONE

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def seen(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_seen", timeout=10, context=self.tls) as response:
            found: dict[str, Any] = json.load(response)
            return found


@contextmanager
def stub(*args: str) -> Iterator[Stub]:
    proc = subprocess.Popen(
        [sys.executable, str(STUB), *args], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""))
        reader.start()
        reader.join(START_TIMEOUT)
        assert line and line[0].strip().isdigit(), f"the stub did not start: {line}"
        yield Stub(proc, int(line[0]), "--cert" in args)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def timed(fn: Callable[[], load.Figures]) -> tuple[load.Figures, float]:
    start = time.monotonic()
    figures = fn()
    return figures, time.monotonic() - start


def test_sends_what_users_send_counts_each_request_and_each_failure() -> None:
    burn_ms, clients = 4.0, 4
    with stub("--burn-ms", str(burn_ms), "--fail-every", "10") as server:
        figures = load.measure(
            "stub", server.url, ("alice", "a pass:word"), server.pids, clients=clients, seconds=1.5,
            host="mlflow.example.test",
        )  # fmt: skip
        seen = server.seen()
    assert not figures.problem, figures.line()
    assert seen["broken"] == []  # every request well-formed; a new parameter key each time
    # Every request of the loop is counted once, and exactly the stub's failures are errors.
    assert figures.requests == seen["loop"] > 40
    assert figures.errors == seen["failed"] == seen["loop"] // 10
    assert figures.error_kinds == (("HTTP 500", figures.errors),)
    assert not figures.ok
    # The set-up: one experiment, one run per client; then the four requests in turn.
    paths = seen["paths"]
    assert paths.pop("/api/2.0/mlflow/experiments/create") == 1
    assert paths.pop("/api/2.0/mlflow/runs/create") == clients
    assert set(paths) == {
        f"/api/2.0/mlflow/runs/{op}" for op in ("log-metric", "log-parameter", "log-batch", "get")
    }
    assert max(paths.values()) - min(paths.values()) <= clients
    # Signed in, with the Host given, on every request (the set-up's too).
    total = seen["loop"] + 1 + clients
    assert seen["authorization"] == {basic("alice", "a pass:word"): total}
    assert seen["host"] == {"mlflow.example.test": total}
    # Throughput and latency from the successful requests.
    successes = figures.requests - figures.errors
    assert figures.rps == pytest.approx(successes / figures.seconds)
    assert burn_ms <= figures.p50_ms <= figures.p95_ms
    # The stub's CPU: at least what it burnt on each request (failed ones too), shared out over the
    # successful ones, plus its own HTTP handling: well under 10 ms a request.
    burnt_ms = burn_ms * figures.requests / successes
    assert burnt_ms * 0.9 <= figures.cpu_ms_per_request <= burnt_ms + 10, figures.line()
    assert figures.cpu_seconds == pytest.approx(figures.cpu_ms_per_request * successes / 1000)


def test_without_host_and_auth_sends_the_url_host_and_no_credentials() -> None:
    with stub() as server:
        figures = load.measure("stub", server.url + "/", None, server.pids, clients=1, seconds=0.3)
        named = f"http://mlflow.load.test:{server.port}"
        resolved = load.measure(
            "named", named, None, server.pids, clients=1, seconds=0.3, resolve="127.0.0.1"
        )
        seen = server.seen()
    assert figures.ok, figures.line()
    assert resolved.ok, resolved.line()
    assert seen["authorization"] == {"": figures.requests + resolved.requests + 4}
    assert seen["host"] == {
        f"127.0.0.1:{server.port}": figures.requests + 2,
        f"mlflow.load.test:{server.port}": resolved.requests + 2,
    }


def test_https_to_a_custom_host_on_127_0_0_1_checks_its_certificate(tmp_path: Path) -> None:
    tls = servers.make_tls(tmp_path / "tls")
    cert, key = servers.host_certificate(tls, tmp_path / "host", ["mlflow.load.test"])
    trusted = ssl.create_default_context(cafile=str(tls.ca))
    with stub("--cert", str(cert), "--key", str(key)) as server:
        url = f"https://mlflow.load.test:{server.port}"
        figures = load.measure(
            "tls",
            url,
            ("alice", "pw"),
            server.pids,
            clients=2,
            seconds=0.5,
            resolve="127.0.0.1",
            ssl_context=trusted,
        )
        untrusted = load.measure(
            "untrusted", url, None, server.pids, clients=1, seconds=5, resolve="127.0.0.1"
        )
        other = load.measure(
            "other", f"https://other.load.test:{server.port}", None, server.pids, clients=1, seconds=5,
            resolve="127.0.0.1", ssl_context=trusted,
        )  # fmt: skip
        seen = server.seen()
    assert figures.ok, figures.line()
    assert seen["host"] == {f"mlflow.load.test:{server.port}": figures.requests + 3}
    assert seen["authorization"] == {basic("alice", "pw"): figures.requests + 3}
    for refused in (untrusted, other):
        assert refused.problem.startswith("set-up failed: SSLCertVerificationError"), refused.problem
    assert "other.load.test" in other.problem


def test_stops_at_the_deadline() -> None:
    # 50 ms a request: a client that went on after the deadline would be seen at once.
    with stub("--sleep-ms", "50") as server:
        figures, wall = timed(
            lambda: load.measure("stub", server.url, None, server.pids, clients=3, seconds=1.0)
        )
    assert figures.ok, figures.line()
    assert 1.0 <= figures.seconds < 1.0 + 0.5
    assert wall < 1.0 + 3.0  # the set-up included
    assert 3 * 10 <= figures.requests <= 3 * (1.0 / 0.05 + 1)


def test_stops_after_the_most_requests_allowed() -> None:
    with stub() as server:
        figures, wall = timed(
            lambda: load.measure(
                "stub", server.url, None, server.pids, clients=4, seconds=60, max_requests=37
            )
        )
        seen = server.seen()
    assert figures.requests == seen["loop"] == 37
    assert wall < 20


def test_a_request_that_hangs_times_out_is_counted_and_the_client_goes_on() -> None:
    # Every 5th request hangs for a minute; each waits at most 0.3 s.
    with stub("--hang-every", "5") as server:
        figures, wall = timed(
            lambda: load.measure("stub", server.url, None, server.pids, clients=2, seconds=1.0, timeout=0.3)
        )
        seen = server.seen()
    kinds = dict(figures.error_kinds)
    assert kinds == {"timeout": seen["hung"]}
    assert figures.errors == seen["hung"] >= 2
    assert figures.requests - figures.errors >= 4 * figures.errors - 2  # the others went through
    assert figures.seconds < 1.0 + 0.3 + 0.5
    assert wall < 1.0 + 0.3 + 3.0


def test_a_failed_set_up_is_a_result_not_an_exception() -> None:
    with stub("--require", "alice:right password") as server:
        anonymous = load.measure("anon", server.url, None, server.pids, clients=2, seconds=5)
        wrong = load.measure("wrong", server.url, ("alice", "wrong"), server.pids, clients=2, seconds=5)
        right = load.measure(
            "right", server.url, ("alice", "right password"), server.pids, clients=2, seconds=0.3
        )
        seen = server.seen()
    for figures in (anonymous, wrong):
        assert figures.problem.startswith("set-up failed: HTTP 401"), figures.problem
        assert (figures.requests, figures.errors, figures.rps) == (0, 1, 0.0)
        assert figures.line().endswith(f"not measured: {figures.problem}")
        assert not figures.ok
    assert right.ok, right.line()
    assert seen["loop"] == right.requests  # nothing loaded when the set-up failed

    refused = load.measure(
        "closed", f"http://127.0.0.1:{free_port()}", None, lambda: [], clients=1, seconds=5
    )
    assert refused.problem.startswith("set-up failed: ConnectionRefusedError"), refused.problem


@pytest.mark.parametrize("bad", [
    {"clients": 0}, {"seconds": 0}, {"max_requests": 0}, {"timeout": 0}, {"base_url": "ftp://127.0.0.1:1"},
    {"base_url": "127.0.0.1:8080"},
])  # fmt: skip
def test_meaningless_arguments_are_refused(bad: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"base_url": "http://127.0.0.1:1", **bad}
    with pytest.raises(ValueError, match="load: "):
        load.measure("bad", auth=None, pids=lambda: [], **kwargs)


def test_a_server_process_listed_only_before_the_loop_is_still_counted() -> None:
    calls: list[int] = []

    def first_time_only() -> list[int]:
        calls.append(1)
        return server.pids() if len(calls) == 1 else []

    with stub("--burn-ms", "4") as server:
        figures = load.measure("stub", server.url, None, first_time_only, clients=2, seconds=0.6)
    assert len(calls) == 2
    assert 4 * 0.9 <= figures.cpu_ms_per_request <= 4 + 10, figures.line()


# --- server CPU: the process tree read before and after ------------------------------------------
BURNER = "import time\nend = time.process_time() + {}\nwhile time.process_time() < end: pass\nprint(1, flush=True)\ntime.sleep(60)"


@contextmanager
def child(burn_seconds: float) -> Iterator[subprocess.Popen[str]]:
    """A process that burns ``burn_seconds`` of CPU, says so, and stays alive."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BURNER.format(burn_seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "1"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_cpu_of_processes_there_before_and_of_those_that_appeared_since() -> None:
    with child(0.0) as idle:
        before = load.cpu_snapshot([idle.pid])
        with child(0.4) as newcomer:
            after = load.cpu_snapshot({idle.pid, newcomer.pid})
            # What the newcomer's Python start-up cost is counted too: it happened since.
            assert 0.4 - 2 * TICK <= load.cpu_seconds(before, after) < 0.4 + 0.5
            assert load.cpu_seconds(after, after) == 0.0
    assert load.cpu_snapshot([idle.pid, newcomer.pid]) == {}  # gone: not read


def test_a_reused_pid_counts_from_zero_and_a_vanished_process_not_at_all() -> None:
    tick = os.sysconf("SC_CLK_TCK")
    before = {10: (500, 40), 11: (600, 7)}
    assert load.cpu_seconds(before, {10: (500, 40 + tick)}) == 1.0  # 11 exited: nothing after its reading
    assert load.cpu_seconds(before, {10: (900, tick)}) == 1.0  # another process with pid 10
    assert load.cpu_seconds(before, {12: (700, 2 * tick)}) == 2.0


# --- figures, percentiles and the table --------------------------------------------------------
def test_percentiles_interpolate_between_the_nearest_ranks() -> None:
    assert load.percentiles([float(x) for x in range(1, 101)]) == pytest.approx((50.5, 95.05))
    assert load.percentiles([3.0, 1.0]) == pytest.approx((2.0, 2.9))
    assert load.percentiles([7.0]) == (7.0, 7.0)
    assert all(math.isnan(x) for x in load.percentiles([]))


BARE = load.Figures("bare", 8, 20.0, 2000, 0, 100.0, 40.0, 90.0, 30.0, 15.0)
CACHED = replace(BARE, label="sign-in, cache 30 s", rps=80.0, p50_ms=55.4, cpu_ms_per_request=22.25)
NO_CACHE = replace(
    BARE,
    label="sign-in, no cache",
    requests=60,
    errors=3,
    rps=2.5,
    p95_ms=4012.0,
    error_kinds=(("timeout", 3),),
)
FAILED = load.Figures(
    "broken", 8, 0.0, 0, 1, 0.0, math.nan, math.nan, 0.0, math.nan, problem="set-up failed: HTTP 401"
)


def test_one_line_per_measurement() -> None:
    assert BARE.line() == (
        "bare: 100.0 req/s, p50 40 ms, p95 90 ms, server CPU 15.0 ms/request (2000 requests, 0 errors, "
        "8 clients, 20.0 s, 30.0 CPU s)"
    )
    assert "(60 requests, 3 errors (timeout x3), 8 clients" in NO_CACHE.line()
    assert FAILED.line() == "broken: not measured: set-up failed: HTTP 401"
    assert BARE.ok and not NO_CACHE.ok and not FAILED.ok


def test_compare_gives_each_row_against_the_first() -> None:
    table = load.compare([BARE, CACHED, NO_CACHE, FAILED]).splitlines()
    assert table[0].startswith("| case | req/s | vs bare | p50 (ms) | p95 (ms) | server CPU (ms/request) |")
    assert table[1].count("|") == table[0].count("|")
    assert table[2] == "| bare | 100.0 | 1.00x | 40 | 90 | 15.0 | 2000 | 0 | 8, 20.0 |"
    assert table[3] == "| sign-in, cache 30 s | 80.0 | 0.80x | 55 | 90 | 22.2 | 2000 | 0 | 8, 20.0 |"
    assert table[4] == "| sign-in, no cache | 2.5 | 0.03x | 40 | 4012 | 15.0 | 60 | 3 | 8, 20.0 |"
    assert table[5] == "| broken | - | - | - | - | - | - | 1 | not measured: set-up failed: HTTP 401 |"
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert load.throughput_ratio(CACHED, BARE) == 0.8
    assert math.isnan(load.throughput_ratio(BARE, FAILED))
    assert load.compare([FAILED, BARE]).splitlines()[3].split(" | ")[2] == "-"
    assert load.compare([]) == ""
