"""Receivers for the alert channel tests: a recording HTTP server and a real SMTP server (aiosmtpd).

The HTTP server stands in for Slack and webhook receivers, the one edge that leaves the machine: it records every
request and answers from a script. The SMTP server is aiosmtpd, a real one, recording what it accepted.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Connection, delete, insert

from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import alert_channels, alert_rules
from tests.conftest import free_port

WAIT_SECONDS = 10.0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class RecordingServer:
    """An HTTP server on 127.0.0.1 (or ``host="::1"``) that records requests and answers from a script (then
    ``default``)."""

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1") -> None:
        self.requests: list[Request] = []
        self.script: list[Answer] = []
        self.default = Answer()
        self._lock = threading.Lock()
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        self._server = server_class((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.script.append(Answer(status, body, headers or {}))

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.requests) >= count, f"expected {count} request(s), got {len(self.requests)}"
        return self.requests

    def _next(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                answer = server._next(Request(self.command, self.path, headers, body))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=WAIT_SECONDS)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


class RecordingHandler:
    """An aiosmtpd handler that keeps what it accepted; refuses ``refuse`` recipients and can fail DATA."""

    def __init__(self, *, refuse: tuple[str, ...] = (), data_answer: str | None = None) -> None:
        self.received: list[Received] = []
        self.refuse = set(refuse)
        self.data_answer = data_answer

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answer:
            return self.data_answer
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated else None
        # session.ssl is set by STARTTLS; a connection that was TLS from the start (SMTPS) shows on the transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, tls, login))
        return "250 Message accepted"


def authenticator(user: str, password: str) -> Any:
    """An aiosmtpd authenticator accepting exactly ``user`` / ``password``."""

    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, auth_data=auth_data if ok else None, handled=False)

    return check


@contextmanager
def smtp_server(handler: RecordingHandler, **options: Any) -> Iterator[Controller]:
    """A running aiosmtpd on 127.0.0.1; ``options`` go to the SMTP server (tls_context, authenticator, …)."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ready_timeout=WAIT_SECONDS, **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (made by the openssl CLI)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def only_webhook_channel(connection: Connection, project_id: int = 1) -> int:
    """A clean slate for rule tests: the default rules removed, one webhook channel (never contacted); its id."""
    connection.execute(delete(alert_rules))
    return int(
        connection.execute(
            insert(alert_channels)
            .values(
                project_id=project_id,
                name="hook",
                kind="webhook",
                config=json.dumps({"url": "http://127.0.0.1:9/hook", "secret": "s"}),
                hourly_cap=1000,
                created_at=now(),
            )
            .returning(alert_channels.c.id)
        ).scalar_one()
    )
