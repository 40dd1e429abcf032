"""Webhook channel: the notification as signed JSON, POSTed to any URL. Also the HTTP delivery Slack shares.

The body is ``{"type": "stackwatch.alert", "idempotency_key", "sent_at", "notification": {...}}``. The receiver
checks ``X-Stackwatch-Signature: sha256=<hex>``, the HMAC-SHA256 with the channel's secret of
``f"{X-Stackwatch-Timestamp}." + body``, and rejects stale timestamps (docs/alerts.md shows how).

Delivery rules for every HTTP channel: no redirects (a 3xx is a permanent error — following one would send the
payload somewhere the user did not configure), 5 s to connect, 10 s for each further wait; ``2xx`` is delivered;
408, 429, ``5xx``, timeouts and connection errors are transient; any other status is permanent. The answer's body
is never read: an error says the status and its standard reason phrase, so a channel test cannot be used to read
what a server answers. Every connection goes through :func:`guard.connections`, which refuses private (when not
allowed), link-local and metadata addresses on the address actually connected to.
"""

from __future__ import annotations

import hashlib
import hmac
import http
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from stackwatch import __version__
from stackwatch.server.alerts import guard
from stackwatch.server.alerts.channels.base import ChannelError
from stackwatch.server.alerts.message import Notification
from stackwatch.server.alerts.render import one_line
from stackwatch.server.alerts.targets import TargetRefused, allows_private, check_target
from stackwatch.server.config import Settings

__all__ = [
    "KIND",
    "USER_AGENT",
    "WebhookChannel",
    "build",
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
MAX_URL = 2048


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


def check_url(url: str, settings: Settings | None) -> None:
    """At save time: refuse the host of an http(s) URL by the rules of :mod:`..targets` (``ValueError``)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        check_target(parts.hostname or "", port, allow_private=allows_private(settings))
    except TargetRefused as refused:
        raise ValueError(f"url: {refused}") from None


def _status_error(where: str, status: int) -> ChannelError:
    """The error for a status other than 2xx: the code and its standard phrase, never what the server said."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "unknown status"
    if 300 <= status < 400:
        return ChannelError(f"{where}: HTTP {status} {phrase}; redirects are not followed", permanent=True)
    transient = status in (408, 429) or status >= 500
    return ChannelError(f"{where}: HTTP {status} {phrase}", permanent=not transient)


def post(url: str, *, content: bytes, headers: dict[str, str], settings: Settings | None) -> None:
    """POST ``content`` to ``url``; return on ``2xx``, raise ``ChannelError`` otherwise (see the module doc)."""
    where = public_url(url)
    with guard.connections(allow_private=allows_private(settings)) as checked:
        try:
            with (
                httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client,
                client.stream("POST", url, content=content, headers=headers) as response,
            ):
                status = response.status_code  # the body is left unread
        except httpx.TimeoutException as exc:
            raise ChannelError(f"{where}: timed out ({type(exc).__name__})", permanent=False) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ChannelError(f"{where}: {exc}", permanent=True) from None
        except httpx.TransportError as exc:
            if checked.refused is not None:
                raise ChannelError(f"{where}: not sent: {checked.refused}", permanent=True) from None
            raise ChannelError(f"{where}: {exc or type(exc).__name__}", permanent=False) from None
    if not 200 <= status < 300:
        raise _status_error(where, status)


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
    check_url(url, settings)
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
