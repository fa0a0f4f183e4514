"""The state tests' server writes each answer in one piece (see moto_serve.py for why)."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.state.moto_serve import one_piece

BODY = b'{"Item": {"LockID": {"S": "bucket/key"}}}'


def app(_environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response(
        "200 OK", [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]


def server_writes(
    handler: type[WSGIRequestHandler], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[bytes], bytes]:
    """Serve one request with ``handler``; return what the server's threads wrote, call by call,
    and what the client read."""
    writes: list[bytes] = []
    client_thread = threading.get_ident()
    for name in ("send", "sendall"):
        original = getattr(socket.socket, name)

        def record(sock: socket.socket, data: bytes, *args: Any, _original: Any = original) -> Any:
            if threading.get_ident() != client_thread:
                writes.append(bytes(data))
            return _original(sock, data, *args)

        monkeypatch.setattr(socket.socket, name, record)
    # Threaded, as moto_server runs it (werkzeug then speaks HTTP/1.1).
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        client.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "DynamoDB_20120810.GetItem"})
        answer = client.getresponse().read()
        client.close()
    finally:
        thread.join(timeout=10)
        server.server_close()  # joins the request's thread
    return writes, answer


def test_an_answer_leaves_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    writes, answer = server_writes(one_piece(WSGIRequestHandler), monkeypatch)
    assert answer == BODY
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n" + BODY)


def test_werkzeug_alone_writes_headers_and_body_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """What one_piece changes (and what makes the test above able to fail)."""
    writes, answer = server_writes(WSGIRequestHandler, monkeypatch)
    assert answer == BODY
    assert len(writes) >= 2
    assert writes[-1] == BODY
