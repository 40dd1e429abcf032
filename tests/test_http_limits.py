"""Request limits of the real server, over raw sockets: huge heads, trickled requests, silent connections.

Each refused request gets its status and a closed connection, stores nothing, and the server goes on serving;
the real SDKs' requests pass untouched.
"""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from tests.captures import NODE_DIR, PYTHON_DIR, load
from tests.conftest import PYTHON_KEY, ServerFactory, ServerProcess
from tests.support import event_envelope, message_event

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def limited(start_server: ServerFactory) -> ServerProcess:
    return start_server(STACKWATCH_BODY_TIMEOUT="2", STACKWATCH_KEEPALIVE_TIMEOUT="1")


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with contextlib.suppress(ConnectionResetError):  # a reset after the answer (the client was still sending)
        while chunk := sock.recv(65536):
            data += chunk
    return data


def status_of(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1])


def still_serving(server: ServerProcess) -> None:
    assert server.process is not None and server.process.poll() is None
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200


def stored_events(server: ServerProcess) -> int:
    server.wait_digested()
    response = httpx.get(
        f"{server.base_url}/api/v1/projects/python/issues", headers={"Authorization": f"Bearer {server.token}"}
    )
    assert response.status_code == 200, response.text
    return sum(issue["count"] for issue in response.json()["data"])


def _fields(count: int) -> bytes:
    return b"".join(b"X-Field-%d: value\r\n" % i for i in range(count))


TOTAL = b"request header fields larger than 65536 bytes"
LINE = b"a request header field is longer than 16384 bytes"


def _long_fields(count: int, size: int) -> bytes:
    return b"".join(b"X-Long-%d: " % i + b"c" * size + b"\r\n" for i in range(count))


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("head", "status", "reason"),
    [
        # Refused by the size of the reads, long before the field ends (the parser keeps a field until it does).
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", 431, TOTAL),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Line: " + b"b" * 20_000 + b"\r\n\r\n", 431, LINE),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + _fields(101) + b"\r\n", 431, b"more than 100 request header"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + _long_fields(5, 15_000) + b"\r\n", 431, TOTAL),
        (b"GET /healthz?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, b"request line longer than 16384"),
    ],
    ids=["1 MB field", "one long line", "101 fields", "75 kB in lines under the limit", "long request line"],
)
def test_a_head_over_the_limits_is_refused(limited: ServerProcess, head: bytes, status: int, reason: bytes) -> None:
    with connect(limited) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)  # refused before it is all sent: the answer is still there to read
        data = answer(sock)
    assert status_of(data) == status
    assert reason in data
    assert b"connection: close" in data and b"x-sentry-error: " in data
    still_serving(limited)


@SQLITE_ONLY
def test_a_head_just_under_the_limits_is_served(limited: ServerProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + _fields(95) + b"X-Line: " + b"d" * 16_000 + b"\r\n\r\n"
    with connect(limited) as sock:
        sock.sendall(head)
        assert status_of(sock.recv(65536)) == 200


def _trickle(sock: socket.socket, data: bytes) -> None:
    """One byte a second, until the server closes the connection."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return
        time.sleep(1)


@SQLITE_ONLY
@pytest.mark.parametrize("part", ["body", "head"])
def test_a_trickled_request_gets_408_and_stores_nothing(limited: ServerProcess, part: str) -> None:
    body = event_envelope(message_event("trickled"))
    head = (
        f"POST /api/1/envelope/?sentry_key={PYTHON_KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with connect(limited) as sock:
        if part == "body":
            sock.sendall(head)
            _trickle(sock, body[:10])  # 10 s of bytes against the deadline of 2 s
        else:
            _trickle(sock, head[:10])
        data = answer(sock)
    assert status_of(data) == 408
    assert b"did not arrive within 2 seconds" in data
    still_serving(limited)
    assert stored_events(limited) == 0
    sent = httpx.post(f"{limited.base_url}/api/1/envelope/?sentry_key={PYTHON_KEY}", content=body, timeout=10)
    assert sent.status_code == 200  # the same request, sent at once, is stored
    assert stored_events(limited) == 1


@SQLITE_ONLY
def test_a_silent_connection_is_closed(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        assert answer(sock) == b""  # closed by the server after the keep-alive timeout, without a request
    still_serving(limited)


@SQLITE_ONLY
def test_real_sdk_requests_pass_the_limits(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for directory in (PYTHON_DIR, NODE_DIR):
            for captured in load(directory):
                response = client.post(captured.path, content=captured.body, headers=captured.headers)
                assert response.status_code == 200, (directory.name, captured.name, response.text)
    server.wait_digested()
