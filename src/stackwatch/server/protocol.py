"""uvicorn's HTTP/1.1 protocol (httptools) with the limits its parser does not enforce.

llhttp, httptools' parser, limits nothing in a request's head, and uvicorn times out only idle connections that
have finished a request: a client could send a megabyte of headers, or a request one byte a second for ever, and
hold a connection and the memory of what it sent. Enforced here, where the bytes arrive, before anything reaches
the application:

* the head (request line and header fields): at most ``max_header_bytes`` in all, ``max_header_line_bytes`` per
  line and ``max_headers`` fields, else ``431`` (``414`` for a request line over the per-line limit);
* the whole request, head and body, must arrive within ``body_timeout`` seconds of its first byte, else ``408``;
* a connection that sends nothing is closed after the keep-alive timeout, like an idle one between requests.

Each of these answers closes the connection. The application never sees the refused request, or sees it end in a
disconnect when the deadline passes while it reads the body (ingest then stores nothing). What the client still
sends is read and dropped for a moment after the answer, so that it gets to read the answer instead of a reset.

The head is counted twice, cheaply: by the parser's callbacks (exact, for a head that arrives in one read) and by
the size of the reads that end inside a head (for one that does not; httptools buffers a field until it ends, so
a megabyte-long field is only seen by its reads).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["LimitedHttpToolsProtocol", "Limits", "protocol_with"]

log = logging.getLogger("stackwatch.http")

# How long the answer to a refused request stays readable while what the client still sends is dropped.
LINGER_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int
    max_header_line_bytes: int
    max_headers: int
    body_timeout: float


def protocol_with(limits: Limits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=`` option, with these limits."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[Limits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # between a request's first byte and the end of its header fields
        self._began = False  # a request began during the read being parsed
        self._head_bytes = 0  # request line and fields, as the parser reported them
        self._head_reads = 0  # bytes of the reads that began and ended inside the head
        self._fields = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._closer: asyncio.TimerHandle | None = None
        self._refused = False

    # --- connection -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only once a response is sent; a connection that never sends a byte
        # would stay open for ever.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._closer is not None:
            self._closer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered and closing: what the client still sends is dropped
        was_in_head, self._began = self._in_head, False
        super().data_received(data)
        if self._refused or not (self._in_head and was_in_head and not self._began):
            return
        self._head_reads += len(data)
        if self._head_reads > self.limits.max_header_bytes:
            self._refuse(431, f"request header fields larger than {self.limits.max_header_bytes} bytes")

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadline()  # the connection is the WebSocket protocol's from here on
        super().handle_websocket_upgrade()

    # --- parser callbacks -------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._in_head, self._began = True, True
        self._head_bytes = self._head_reads = self._fields = 0
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.limits.body_timeout, self._timed_out)

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        self._head_bytes += len(url)
        if len(self.url) > self.limits.max_header_line_bytes:
            self._refuse(414, f"request line longer than {self.limits.max_header_line_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4  # "name: value\r\n"
        self._head_bytes += size
        self._fields += 1
        limits = self.limits
        if self._refused:
            return
        if size > limits.max_header_line_bytes or self._fields > limits.max_headers:
            self._refuse_fields(size)
        elif self._head_bytes > limits.max_header_bytes:
            self._refuse(431, f"request header fields larger than {limits.max_header_bytes} bytes")
        else:
            HttpToolsProtocol.on_header(self, name, value)  # called per field: spared super()'s lookup

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel_deadline()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # the parser may trip over the rest of a request already refused: one answer only
            super().send_400_response(msg)

    # --- refusing ---------------------------------------------------------------------------------
    def _refuse_fields(self, size: int) -> None:
        if size > self.limits.max_header_line_bytes:
            self._refuse(431, f"a request header field is longer than {self.limits.max_header_line_bytes} bytes")
        else:
            self._refuse(431, f"more than {self.limits.max_headers} request header fields")

    def _timed_out(self) -> None:
        self._deadline = None
        if not self._refused and not self.transport.is_closing():
            self._refuse(408, f"the request did not arrive within {self.limits.body_timeout:g} seconds")

    def _refuse(self, status: int, reason: str) -> None:
        self._refused = True
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("refused a request from %s with %d: %s", client, status, reason)
        # The request being received has a cycle (and an application reading its body) once its head is complete.
        current = None if self._in_head else self.cycle
        if current is not None and not current.response_complete:
            current.disconnected = True  # the application's next receive() is a disconnect; its answer is dropped
            current.message_event.set()
        answering = current is not None and current.response_started and not current.response_complete
        earlier = self._in_head and self.cycle is not None and not self.cycle.response_complete
        if answering or earlier or (current is not None and current.response_complete):
            self.transport.close()  # an answer is, or was, on the wire for this connection: nothing may follow it
            return
        self.transport.write(self._answer(status, reason))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._closer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _answer(self, status: int, reason: str) -> bytes:
        """As ingest answers errors: a JSON ``detail`` and ``X-Sentry-Error``, which SDKs log."""
        body = json.dumps({"detail": reason}).encode("ascii")
        lines = [STATUS_LINE[status]]
        lines += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: application/json\r\n",
            b"x-sentry-error: " + reason.encode("ascii") + b"\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        return b"".join(lines)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
