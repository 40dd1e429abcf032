"""Finding the DSN key of a request, and the cache of keys that ingest checks it against.

SDKs put the public key in one of four places: the ``X-Sentry-Auth`` header, ``Authorization: Sentry …``,
the ``sentry_key`` query parameter (browsers and Node, which cannot always set headers), or the ``dsn`` in the
envelope header. Only the first three can be read before the body; the last is a fallback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine, select

from stackwatch.server.storage.schema import project_keys, projects

__all__ = ["KeyCache", "KeyInfo", "key_from_dsn", "key_from_request"]


def _auth_fields(header: str) -> dict[str, str]:
    if header[:7].lower() == "sentry ":
        header = header[7:]
    fields = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if value:
            fields[name.strip().lower()] = value.strip().strip('"')
    return fields


def key_from_request(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    for header in (headers.get("x-sentry-auth"), headers.get("authorization")):
        if header and (header.lower().startswith("sentry ") or "sentry_key=" in header):
            key = _auth_fields(header).get("sentry_key")
            if key:
                return key
    return query.get("sentry_key") or None


def key_from_dsn(dsn: object) -> str | None:
    if not isinstance(dsn, str):
        return None
    try:
        return urlsplit(dsn).username or None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    project_id: int
    active: bool
    rate_limit_per_minute: int | None
    # The key's own attachment quotas; ``None``: the server-wide settings.
    attachment_rate_limit_per_minute: int | None = None
    attachment_bytes_per_minute: int | None = None


class KeyCache:
    """Public key → project, read from the database at most once per ``ttl`` seconds per key.

    Unknown keys are cached too, so a client with a wrong DSN cannot turn every request into a query. A key
    revoked in the database stops working within ``ttl`` seconds on every ingest process.
    """

    def __init__(self, engine: Engine, *, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self._engine = engine
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def cached(self, public_key: str) -> tuple[bool, KeyInfo | None]:
        entry = self._entries.get(public_key)
        if entry is None or self._clock() - entry[0] > self._ttl:
            return False, None
        return True, entry[1]

    def load(self, public_key: str) -> KeyInfo | None:
        if len(public_key) > 64 or "\x00" in public_key:
            return None  # cannot be a stored key, and PostgreSQL refuses NUL characters even in a query
        query = (
            select(
                project_keys.c.project_id,
                project_keys.c.active,
                project_keys.c.rate_limit_per_minute,
                project_keys.c.attachment_rate_limit_per_minute,
                project_keys.c.attachment_bytes_per_minute,
            )
            .join(projects, projects.c.id == project_keys.c.project_id)
            .where(project_keys.c.public_key == public_key)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        info = None
        if row is not None:
            info = KeyInfo(
                row.project_id,
                bool(row.active),
                row.rate_limit_per_minute,
                row.attachment_rate_limit_per_minute,
                row.attachment_bytes_per_minute,
            )
        with self._lock:
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[public_key] = (self._clock(), info)
        return info
