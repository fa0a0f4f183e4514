"""moto's server as the state tests run it: each answer written in one piece, optionally with
one injected fault.

``python tests/state/moto_serve.py -H 127.0.0.1 -p PORT [--lose-lock-answer KIND]``

**One piece.** Werkzeug's server (under ``moto_server``) sends an answer's status line and
headers, then its body, in separate writes. Terraform 1.11.4, when short of CPU, at times closes
its own connection in between: it has read the headers of a DynamoDB answer and not yet the body
(seen with strace), and the AWS SDK then sends the request again. A resent lock write meets the
lock the first one took and the run fails. Real endpoints send a small answer in one piece; here
the handler buffers the headers and flushes them with the body. Measured: with three CPU-bound
processes beside two state-test workers, 0 resent requests in 3 runs, against 0 and 4 (and
failed runs before) with werkzeug's own writes.

**The fault.** With ``--lose-lock-answer KIND``, KIND ``dynamodb`` (the conditional ``PutItem``
of the lock item) or ``s3`` (the conditional ``PUT`` of the ``.tflock`` object), the first such
write is carried out, so the lock is taken, and then the connection is cut before a byte of the
answer is sent, as when a network path drops a response. The AWS SDK in Terraform sends the same
write again, and the second one is refused because the first succeeded.
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import WSGIRequestHandler

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def is_lock_write(environ: dict[str, Any], body: bytes, kind: str) -> bool:
    if kind == "dynamodb":
        return (
            environ.get("HTTP_X_AMZ_TARGET", "").endswith(".PutItem")
            and b"attribute_not_exists(LockID)" in body
        )
    return (
        environ.get("REQUEST_METHOD") == "PUT"
        and environ.get("PATH_INFO", "").endswith(".tflock")
        and environ.get("HTTP_IF_NONE_MATCH") == "*"
    )


class LoseLockAnswer:
    """WSGI middleware: carry out the first lock write of ``kind``, then drop its answer."""

    def __init__(self, app: WsgiApp, kind: str) -> None:
        self.app = app
        self.kind = kind
        self.pending = True
        self.guard = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.pending:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        with self.guard:
            lose = self.pending and is_lock_write(environ, body, self.kind)
            self.pending = self.pending and not lose
        if not lose:
            return self.app(environ, start_response)
        for _chunk in self.app(environ, lambda *_args: lambda _data: None):
            pass  # the write is done; its answer is thrown away
        sys.stderr.write(f"moto_serve: the answer to a {self.kind} lock write was dropped\n")
        conn: socket.socket = environ["werkzeug.socket"]
        conn.shutdown(socket.SHUT_RDWR)
        raise ConnectionResetError("moto_serve: answer dropped on purpose")


def one_piece(handler: type[WSGIRequestHandler]) -> type[WSGIRequestHandler]:
    """``handler`` with a buffered writer: werkzeug's status line, header lines and body reach
    the socket at its flush, in one write (``wbufsize = 0``, werkzeug's own, writes each part as
    it comes)."""

    class OnePiece(handler):  # type: ignore[valid-type,misc]
        wbufsize = -1

    return OnePiece


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--lose-lock-answer", choices=("dynamodb", "s3"))
    args = parser.parse_args(argv)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    app: WsgiApp = DomainDispatcherApplication(create_backend_app)
    if args.lose_lock_answer:
        app = LoseLockAnswer(app, args.lose_lock_answer)
    run_simple(args.host, args.port, app, threaded=True, request_handler=one_piece(MotoRequestHandler))


if __name__ == "__main__":
    main()
