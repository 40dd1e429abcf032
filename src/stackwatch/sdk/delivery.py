"""Sending one envelope to the DSN's envelope endpoint, and what the answer means for the ones that follow.

* :class:`Delivery` — ``POST /api/<project>/envelope/`` over one keep-alive connection (no retries, no
  redirects, tight timeouts), gzip-compressed, authenticated with ``X-Sentry-Auth`` as sentry-sdk does.
* :class:`RateLimits` — what the server asked for in ``X-Sentry-Rate-Limits`` and ``Retry-After``, per data
  category, as deadlines on the monotonic clock.
* :class:`Backoff` — exponential delays with jitter, capped.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import urlsplit

from sentry_sdk.consts import VERSION as SENTRY_VERSION
from sentry_sdk.consts import EndpointType
from sentry_sdk.transport import _parse_rate_limits
from sentry_sdk.utils import Dsn

__all__ = [
    "HELD_CATEGORIES",
    "Answer",
    "Backoff",
    "Delivery",
    "DeliveryError",
    "RateLimits",
    "parse_retry_after",
    "with_sent_at_now",
]

# Data categories that are never dropped because of a rate limit: they wait in the spool until it expires.
# Every other category (transactions, spans, profiles, replays, check-ins, logs…) is dropped while limited,
# as sentry-sdk does, and counted in a client report.
HELD_CATEGORIES = frozenset({"error", "default", "security", "attachment", "session", "internal", "feedback"})
# When a 429 names no duration at all, as sentry-sdk does.
DEFAULT_RETRY_AFTER = 60.0
# A server's Retry-After is honoured up to this long; a bigger value is more likely a mistake than a plan.
MAX_RETRY_AFTER = 3600.0
_SENT_AT = re.compile(rb'"sent_at"\s*:\s*"[^"]*"')


class DeliveryError(Exception):
    """The envelope did not get an answer: connection refused or reset, timeout, TLS failure…"""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None
    rate_limits: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def permanent(self) -> bool:
        """The server will never accept this envelope (400 malformed, 413 too large, 401/403 bad key…).

        Everything else that is not a success — 429, 408, 5xx, and 3xx (no redirect is followed: a proxy being
        reconfigured should not cost events) — is worth sending again later.
        """
        return 400 <= self.status < 500 and self.status not in (408, 429)


class Delivery:
    """POSTs envelope bodies to one DSN over a single keep-alive connection. Used by one thread at a time.

    A deliberately small HTTP/1.1 client on a socket rather than urllib3 or http.client: the sender shares the
    GIL with the application's threads, and every microsecond of Python it runs per envelope can delay a
    capturing thread. Measured per envelope, urllib3 cost ~0.4 ms of CPU with the GIL held (header objects,
    ``email`` parsing of the answer); this client builds the request as one buffer, writes it with one call and
    reads only the status line and the headers it needs. Answers with ``Content-Length``, chunked, or
    close-delimited bodies are read; redirects are not followed; timeouts apply to connect and to every read.
    """

    def __init__(
        self,
        dsn: Dsn,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        compress: bool = True,
        ca_certs: str | None = None,
    ) -> None:
        client = f"sentry.python/{SENTRY_VERSION}"
        auth = dsn.to_auth(client)
        self.url = auth.get_api_url(EndpointType.ENVELOPE)
        parts = urlsplit(self.url)
        self._address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        self._tls = ssl.create_default_context(cafile=ca_certs) if parts.scheme == "https" else None
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._compress = compress
        head = [
            f"POST {parts.path or '/'} HTTP/1.1",
            f"Host: {dsn.netloc}",
            f"User-Agent: {client}",
            f"X-Sentry-Auth: {auth.to_header()}",
            "Content-Type: application/x-sentry-envelope",
            "Accept-Encoding: identity",
        ]
        if compress:
            head.append("Content-Encoding: gzip")
        self._head = ("\r\n".join(head) + "\r\nContent-Length: ").encode("latin-1")
        self._socket: socket.socket | None = None
        self._reader: BinaryIO | None = None

    def post(self, body: bytes) -> Answer:
        """Send one envelope; the server's answer, or :class:`DeliveryError` when there was none."""
        if self._compress:
            # wbits=31: a gzip stream. zlib releases the GIL while it compresses.
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            body = compressor.compress(body) + compressor.flush()
        request = self._head + str(len(body)).encode() + b"\r\n\r\n" + body
        reused = self._socket is not None
        try:
            return self._exchange(request)
        except (OSError, ValueError, _Malformed) as error:
            self.close()
            if reused and isinstance(error, _Dropped | ConnectionResetError | BrokenPipeError):
                # The server closed the idle keep-alive connection before reading this request: a new one.
                try:
                    return self._exchange(request)
                except (OSError, ValueError, _Malformed) as retry_error:
                    self.close()
                    error = retry_error
            raise DeliveryError(f"{type(error).__name__}: {error}") from error

    def _exchange(self, request: bytes) -> Answer:
        if self._socket is None:
            self._connect()
        assert self._socket is not None and self._reader is not None
        self._socket.sendall(request)
        status, headers, keep_alive = self._read_head(self._reader)
        self._read_body(self._reader, headers, status)
        if not keep_alive:
            self.close()
        return Answer(status, headers.get("retry-after"), headers.get("x-sentry-rate-limits"))

    def _connect(self) -> None:
        sock = socket.create_connection(self._address, timeout=self._connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._address[0])
            sock.settimeout(self._read_timeout)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        self._reader = sock.makefile("rb")

    @staticmethod
    def _read_head(reader: BinaryIO) -> tuple[int, dict[str, str], bool]:
        while True:
            line = reader.readline(_MAX_LINE)
            if not line:
                raise _Dropped("the connection closed before an answer")
            version, _, rest = line.decode("latin-1").partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/") or not code.isdigit():
                raise _Malformed(f"not an HTTP status line: {line[:80]!r}")
            headers: dict[str, str] = {}
            for _ in range(_MAX_HEADERS):
                field = reader.readline(_MAX_LINE)
                if field in (b"\r\n", b"\n", b""):
                    break
                name, _, value = field.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            else:
                raise _Malformed("too many header lines")
            status = int(code)
            if 100 <= status < 200:
                continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            connection = headers.get("connection", "").lower()
            keep_alive = version != "HTTP/1.0" and "close" not in connection
            return status, headers, keep_alive

    def _read_body(self, reader: BinaryIO, headers: dict[str, str], status: int) -> None:
        """Consume the answer's body (it is not needed) so that the connection can carry the next request."""
        if status in (204, 304):
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            for _ in range(_MAX_CHUNKS):
                size = int(reader.readline(_MAX_LINE).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while reader.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                _read_exactly(reader, size + 2)
            raise _Malformed("too many chunks")
        length = headers.get("content-length")
        if length is not None:
            _read_exactly(reader, int(length))
        else:
            self.close()  # the body runs until the server closes: not worth reading

    def close(self) -> None:
        sock, reader, self._socket, self._reader = self._socket, self._reader, None, None
        with contextlib.suppress(OSError):
            if reader is not None:
                reader.close()
            if sock is not None:
                sock.close()


class _Malformed(Exception):
    """The server's answer is not HTTP as this client reads it."""


class _Dropped(_Malformed):
    """The connection ended before any answer."""


_MAX_LINE = 65536
_MAX_HEADERS = 200
_MAX_CHUNKS = 10000
_MAX_BODY = 16 * 1024 * 1024


def _read_exactly(reader: BinaryIO, size: int) -> None:
    if size > _MAX_BODY:
        raise _Malformed(f"an answer body of {size} bytes")
    if len(reader.read(size)) != size:
        raise _Malformed("the answer ended early")


class RateLimits:
    """Per-category "do not send before" deadlines; the ``None`` category holds back everything.

    Written by the sender thread, read by capturing threads: single dictionary reads and writes, no lock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str | None, float] = {}

    def update(self, answer: Answer) -> None:
        """Apply an answer's headers. ``X-Sentry-Rate-Limits`` is honoured on every status, as the protocol says."""
        if answer.rate_limits:
            now = datetime.now(UTC)
            for category, until in _parse_rate_limits(answer.rate_limits, now):
                self._extend(category, (until - now).total_seconds())
        elif answer.status == 429:
            self._extend(None, parse_retry_after(answer.retry_after) or DEFAULT_RETRY_AFTER)

    def _extend(self, category: str | None, seconds: float) -> None:
        deadline = self._clock() + min(max(seconds, 0.0), MAX_RETRY_AFTER)
        if deadline > self._until.get(category, 0.0):
            self._until[category] = deadline

    def remaining(self, category: str) -> float:
        """Seconds until ``category`` may be sent again (0 when it may be sent now)."""
        deadline = max(self._until.get(category, 0.0), self._until.get(None, 0.0))
        return max(0.0, deadline - self._clock()) if deadline else 0.0

    def blocked(self, categories: Iterable[str]) -> float:
        """Seconds until every one of ``categories`` may be sent again."""
        return max((self.remaining(category) for category in categories), default=self.remaining("default"))

    def any_active(self) -> bool:
        now = self._clock()
        return any(deadline > now for deadline in self._until.values())


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number of seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if math.isfinite(seconds) else None


def with_sent_at_now(data: bytes) -> bytes:
    """Refresh the envelope header's ``sent_at``: servers use it to correct clock drift, so it must be now."""
    end = data.find(b"\n")
    header = data if end < 0 else data[:end]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
    fresh, count = _SENT_AT.subn(b'"sent_at":"' + now + b'"', header, count=1)
    return data if count == 0 else fresh + (b"" if end < 0 else data[end:])


class Backoff:
    """Exponential backoff with jitter: ``base · 2ⁿ`` capped at ``cap``, each delay drawn from ½–1 of that."""

    def __init__(self, cap: float, *, base: float = 0.5, rng: Callable[[], float] = random.random) -> None:
        self.cap = cap
        self.base = min(base, cap)
        self._rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(self.failures, 60))
        self.failures += 1
        return ceiling * (0.5 + 0.5 * self._rng())

    def reset(self) -> None:
        self.failures = 0
