"""Webhook channel: the notification as signed JSON, POSTed to any URL. Also the HTTP delivery Slack shares.

The body is ``{"type": "stackwatch.alert", "idempotency_key", "sent_at", "notification": {...}}``. The receiver
checks ``X-Stackwatch-Signature: sha256=<hex>``, the HMAC-SHA256 with the channel's secret of
``f"{X-Stackwatch-Timestamp}." + body``, and rejects stale timestamps (docs/alerts.md shows how).

Delivery rules for every HTTP channel: no redirects (a 3xx is a permanent error — following one would send the
payload somewhere the user did not configure), 5 s to connect, 10 s for each further wait and for reading the
answer's body (of which only the start is kept, for the error message); ``2xx`` is delivered;
408, 429, ``5xx``, timeouts and connection errors are transient; any other status is permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from stackwatch import __version__
from stackwatch.server.alerts.channels.base import ChannelError
from stackwatch.server.alerts.message import Notification
from stackwatch.server.alerts.render import one_line, truncate
from stackwatch.server.config import Settings

__all__ = [
    "KIND",
    "USER_AGENT",
    "WebhookChannel",
    "build",
    "check_target",
    "check_url",
    "post",
    "public",
    "public_url",
    "sign",
    "validate",
    "validate_url",
]

KIND = "webhook"
USER_AGENT = f"Stackwatch/{__version__}"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
TOTAL_SECONDS = 10.0
MAX_URL = 2048
EXCERPT_CHARS = 200
_EXCERPT_BYTES = 4096


def validate_url(value: Any, field: str = "url") -> str:
    """An http(s) URL with a host, stripped; ``ValueError`` naming ``field`` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field}: required, an http:// or https:// URL")
    url = value.strip()
    if len(url) > MAX_URL:
        raise ValueError(f"{field}: longer than {MAX_URL} characters")
    if not _is_http_url(url):
        raise ValueError(f"{field}: expected an http:// or https:// URL with a host name")
    return url


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)


def public_url(url: str) -> str:
    """Scheme and host only: paths and query strings of webhook URLs are often the credential."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def private_address(host: str, port: int) -> str | None:
    """The first address of ``host`` that is private, loopback, link-local or reserved; ``None`` if all are public.

    Every address is checked: a name with one public and one private address could be answered with either.
    Raises ``OSError`` (``socket.gaierror``) when the name does not resolve.
    """
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if not _is_public(address):
            return address
    return None


def check_target(host: str, port: int, settings: Settings | None, *, at_send: bool) -> None:
    """Refuse a target on a non-public network when ``alerts_allow_private_targets`` is off.

    At validation (``at_send=False``) a refusal is a ``ValueError`` and a name that does not resolve passes (it
    may resolve later); at send it is a permanent ``ChannelError`` and a name that does not resolve is transient.
    The check runs before each send, so a name that moves to a private address is refused then.
    """
    if settings is None or settings.alerts_allow_private_targets:
        return
    try:
        address = private_address(host, port)
    except OSError as exc:
        if at_send:
            raise ChannelError(f"{host}: cannot resolve ({exc})", permanent=False) from None
        return
    if address is None:
        return
    message = f"{host} resolves to {address}, a private address (STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS is off)"
    if at_send:
        raise ChannelError(message, permanent=True)
    raise ValueError(f"url: {message}")


def check_url(url: str, settings: Settings | None, *, at_send: bool) -> None:
    """:func:`check_target` for the host and port of an http(s) URL."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    check_target(parts.hostname or "", port, settings, at_send=at_send)


def _excerpt(response: httpx.Response, deadline: float) -> str:
    """The start of the response body as one line of at most ``EXCERPT_CHARS``; stops reading at ``deadline``."""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= _EXCERPT_BYTES or time.monotonic() > deadline:
            break
    return truncate(one_line(data[:_EXCERPT_BYTES].decode("utf-8", "replace")), EXCERPT_CHARS)


def _raise_for_status(where: str, response: httpx.Response, excerpt: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f": {excerpt}" if excerpt else ""
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        target = f" to {public_url(location)}" if _is_http_url(location) else ""
        raise ChannelError(f"{where}: HTTP {status}, redirect{target} not followed{detail}", permanent=True)
    transient = status in (408, 429) or status >= 500
    raise ChannelError(f"{where}: HTTP {status}{detail}", permanent=not transient)


def post(url: str, *, content: bytes, headers: dict[str, str], settings: Settings | None) -> None:
    """POST ``content`` to ``url``; return on ``2xx``, raise ``ChannelError`` otherwise (see the module doc)."""
    where = public_url(url)
    check_url(url, settings, at_send=True)
    deadline = time.monotonic() + TOTAL_SECONDS
    try:
        with (
            httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client,
            client.stream("POST", url, content=content, headers=headers) as response,
        ):
            excerpt = _excerpt(response, deadline)
    except httpx.TimeoutException as exc:
        raise ChannelError(f"{where}: timed out ({type(exc).__name__})", permanent=False) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ChannelError(f"{where}: {exc}", permanent=True) from None
    except httpx.TransportError as exc:
        raise ChannelError(f"{where}: {exc or type(exc).__name__}", permanent=False) from None
    _raise_for_status(where, response, excerpt)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Stackwatch-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of ``f"{timestamp}." + body``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def validate(config: dict[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """``{"url": ..., "secret": ...}``; a secret is generated when none is given."""
    if not isinstance(config, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(config) - {"url", "secret"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    url = validate_url(config.get("url"))
    secret = config.get("secret") or secrets.token_urlsafe(32)
    if not isinstance(secret, str) or not 16 <= len(secret) <= 256 or one_line(secret) != secret:
        raise ValueError("secret: expected 16 to 256 characters without spaces (leave it out to get a random one)")
    check_url(url, settings, at_send=False)
    return {"url": url, "secret": secret}


def public(config: dict[str, Any]) -> dict[str, Any]:
    return {"url": public_url(config["url"]), "secret": "set" if config.get("secret") else "missing"}


class WebhookChannel:
    kind = KIND

    def __init__(self, url: str, secret: str, settings: Settings | None):
        self.url = url
        self.secret = secret
        self.settings = settings

    def send(self, notification: Notification) -> None:
        now = int(time.time())
        payload = {
            "type": "stackwatch.alert",
            "idempotency_key": notification.idempotency_key,
            "sent_at": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "notification": notification.as_json(),
        }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Stackwatch-Timestamp": str(now),
            "X-Stackwatch-Signature": sign(self.secret, str(now), body),
            "X-Stackwatch-Idempotency-Key": one_line(notification.idempotency_key),
        }
        post(self.url, content=body, headers=headers, settings=self.settings)


def build(config: dict[str, Any], settings: Settings | None) -> WebhookChannel:
    return WebhookChannel(config["url"], config["secret"], settings)
