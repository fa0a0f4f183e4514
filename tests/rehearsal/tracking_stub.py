"""A stand-in for MLflow's tracking API, for the load generator's tests (test_load.py): the
endpoints ``rehearsal.load`` calls, with MLflow's JSON shapes, run as its own process so that its
CPU can be measured apart from the clients'.

``python tracking_stub.py [--burn-ms MS] [--sleep-ms MS] [--fail-every N] [--hang-every N]
[--require USER:PASSWORD] [--cert PEM --key PEM]`` prints the port it listens on (127.0.0.1) and serves (HTTPS with ``--cert``) until killed.
Each request of the load loop (log-metric, log-parameter, log-batch, runs/get) first burns
``--burn-ms`` of CPU and sleeps ``--sleep-ms``; the Nth, 2Nth ... of them answer 500
(``--fail-every``) or hang for a minute (``--hang-every``). ``GET /_seen`` answers what it saw:
paths, Authorization and Host headers, loop requests, failures, and requests that broke the API's
rules (a missing field, a parameter key logged twice to one run, an unknown run)."""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/api/2.0/mlflow"
LOOP_CALLS = {
    ("POST", "/runs/log-metric"),
    ("POST", "/runs/log-parameter"),
    ("POST", "/runs/log-batch"),
    ("GET", "/runs/get"),
}
LOOP = {endpoint for _, endpoint in LOOP_CALLS}
REQUIRED = {
    "/experiments/create": ("name",),
    "/runs/create": ("experiment_id",),
    "/runs/log-metric": ("run_id", "key", "value", "timestamp", "step"),
    "/runs/log-parameter": ("run_id", "key", "value"),
    "/runs/log-batch": ("run_id", "metrics"),
}


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.paths: Counter[str] = Counter()
        self.authorization: Counter[str] = Counter()
        self.host: Counter[str] = Counter()
        self.loop = 0
        self.failed = 0
        self.hung = 0
        self.broken: list[str] = []
        self.params: dict[str, set[str]] = {}

    def seen(self) -> dict[str, Any]:
        with self.lock:
            return {
                "paths": dict(self.paths),
                "authorization": dict(self.authorization),
                "host": dict(self.host),
                "loop": self.loop,
                "failed": self.failed,
                "hung": self.hung,
                "broken": list(self.broken),
            }


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def handler(state: State) -> type[BaseHTTPRequestHandler]:
    args = state.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as MLflow's server
        disable_nagle_algorithm = True  # as uvicorn: the answer's headers and body go out at once

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.serve(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            self.serve(body if isinstance(body, dict) else {"_not_json": raw.decode(errors="replace")})

        def serve(self, body: dict[str, Any] | None) -> None:
            url = urlsplit(self.path)
            if url.path == "/_seen":
                self.answer(200, state.seen())
                return
            endpoint = url.path.removeprefix(API)
            authorization = self.headers.get("Authorization", "")
            fail = hang = False
            with state.lock:
                state.paths[url.path] += 1
                state.authorization[authorization] += 1
                state.host[self.headers.get("Host", "")] += 1
                if endpoint in LOOP:
                    state.loop += 1
                    fail = bool(args.fail_every) and state.loop % args.fail_every == 0
                    hang = bool(args.hang_every) and state.loop % args.hang_every == 0
                    state.failed += fail
                    state.hung += hang
            if args.require and authorization != "Basic " + base64.b64encode(args.require.encode()).decode():
                self.answer(401, {"error_code": "UNAUTHENTICATED"})
                return
            if endpoint in LOOP:
                burn(args.burn_ms / 1000)
                time.sleep(args.sleep_ms / 1000)
                if hang:
                    time.sleep(60)
                if fail:
                    self.answer(
                        500, {"error_code": "INTERNAL_ERROR", "message": "the stub's planned failure"}
                    )
                    return
            status, answer = self.api(endpoint, url.query, body)
            if status != 200:
                with state.lock:
                    state.broken.append(f"{self.command} {self.path} {body}: {answer}")
            self.answer(status, answer)

        def api(self, endpoint: str, query: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
            """MLflow's answer to a well-formed request; 400 or 404 with MLflow's error shape else."""
            call = (self.command, endpoint)
            run_id = (body or {}).get("run_id") or parse_qs(query).get("run_id", [""])[0]
            problem: tuple[int, str, str] | None = None
            answer: dict[str, Any] = {}
            with state.lock:
                params = state.params.get(run_id)
                if body is not None and any(key not in body for key in REQUIRED.get(endpoint, ())):
                    problem = (400, "INVALID_PARAMETER_VALUE", f"missing field in {body}")
                elif call == ("POST", "/experiments/create"):
                    answer = {"experiment_id": "1"}
                elif call == ("POST", "/runs/create"):
                    run_id = uuid.uuid4().hex
                    state.params[run_id] = set()
                    answer = {"run": {"info": {"run_id": run_id, "experiment_id": "1"}, "data": {}}}
                elif call not in LOOP_CALLS:
                    problem = (404, "ENDPOINT_NOT_FOUND", f"{self.command} {endpoint}")
                elif params is None:
                    problem = (404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id!r}")
                elif endpoint == "/runs/log-parameter" and body is not None:
                    if body["key"] in params:
                        problem = (400, "INVALID_PARAMETER_VALUE", f"param {body['key']} logged twice")
                    params.add(body["key"])
                elif endpoint == "/runs/get":
                    answer = {"run": {"info": {"run_id": run_id}, "data": {"params": sorted(params)}}}
            if problem is not None:
                return problem[0], {"error_code": problem[1], "message": problem[2]}
            return 200, answer

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burn-ms", type=float, default=0.0)
    parser.add_argument("--sleep-ms", type=float, default=0.0)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--hang-every", type=int, default=0)
    parser.add_argument("--require", default="", help="USER:PASSWORD: answer 401 to any other")
    parser.add_argument("--cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--key", help="the certificate's key (PEM)")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(State(args)))
    server.daemon_threads = True
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
