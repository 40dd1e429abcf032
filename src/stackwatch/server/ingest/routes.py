"""The Sentry ingest endpoints: ``/api/<project_id>/envelope/`` and the legacy ``/api/<project_id>/store/``.

Ingest only checks what can be checked at the envelope level (key, sizes, encoding, structure, JSON of the
items it keeps), writes the envelope to the inbox and answers. Grouping and everything else is the digest's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
from anyio import to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from stackwatch.server.config import Settings
from stackwatch.server.digest.normalize import normalize_event_id
from stackwatch.server.ingest import compat
from stackwatch.server.ingest.auth import KeyCache, KeyInfo, key_from_dsn, key_from_request
from stackwatch.server.ingest.decode import BadBody, TooLarge, decode_body
from stackwatch.server.ingest.envelope import (
    Envelope,
    EnvelopeError,
    Item,
    parse_envelope,
    serialize_envelope,
)
from stackwatch.server.ingest.errors import IngestError, header_safe
from stackwatch.server.ingest.limits import (
    ERROR_CATEGORIES,
    KEPT_ITEM_TYPES,
    RateLimiter,
    attachment_quota,
    check_attachment_caps,
    limit_attachments,
    rate_limits_header,
)
from stackwatch.server.metrics import METRICS
from stackwatch.server.storage.disk import DiskUsage
from stackwatch.server.storage.inbox import Inbox

__all__ = ["DISK_RETRY_AFTER", "Ingest"]

log = logging.getLogger("stackwatch.ingest")

# Seconds SDKs are told to hold back while the store is at STACKWATCH_MAX_DISK_MB: space comes back when the
# retention pass deletes, which is a matter of minutes, not seconds; ingest itself accepts again as soon as its
# next measurement (every second or few) finds the usage below the limit.
DISK_RETRY_AFTER = 60

_JSON_ITEMS = frozenset({"event", "session", "sessions", "client_report"})
# JSON items nesting deeper are refused: the digest stores events as JSON, which orjson writes only up to 254
# levels deep, so anything near that would be accepted here and then fail to digest. SDKs send ~10 levels.
MAX_JSON_DEPTH = 128
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "X-Sentry-Error, X-Sentry-Rate-Limits, Retry-After",
}
_ALLOWED_HEADERS = (
    "x-sentry-auth, x-requested-with, origin, accept, content-type, content-encoding, "
    "authorization, sentry-trace, baggage"
)


def _response(status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> Response:
    METRICS.inc("stackwatch_ingest_requests_total", status=str(status))
    return Response(orjson.dumps(body), status, {**_CORS, **(headers or {})}, media_type="application/json")


@dataclass(slots=True)
class _Accepted:
    project_id: int
    envelope: Envelope
    body: bytes
    event_id: str | None
    held_back: str | None = None  # the X-Sentry-Rate-Limits entry of attachments dropped over their quota


class Ingest:
    def __init__(
        self,
        settings: Settings,
        keys: KeyCache,
        inbox: Inbox,
        limiter: RateLimiter | None = None,
        disk: DiskUsage | None = None,
    ):
        self._settings = settings
        self._keys = keys
        self._inbox = inbox
        self._limiter = limiter or RateLimiter()
        self._disk = disk if disk is not None and disk.limit_bytes > 0 else None
        self._disk_full = False  # as last found: a change is logged once

    def routes(self) -> list[Route]:
        return [
            Route("/api/{project_id}/envelope/", self.envelope, methods=["POST"]),
            Route("/api/{project_id}/store/", self.store, methods=["POST"]),
            Route("/api/{project_id}/envelope/", self.preflight, methods=["OPTIONS"]),
            Route("/api/{project_id}/store/", self.preflight, methods=["OPTIONS"]),
        ]

    async def preflight(self, request: Request) -> Response:
        asked = request.headers.get("access-control-request-headers", _ALLOWED_HEADERS)
        headers = {
            **_CORS,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            # Browsers ask for header names, which are printable ASCII; anything else is not echoed back.
            "Access-Control-Allow-Headers": asked if asked.isascii() and asked.isprintable() else _ALLOWED_HEADERS,
            "Access-Control-Max-Age": "86400",
        }
        return Response(status_code=200, headers=headers)

    async def envelope(self, request: Request) -> Response:
        return await self._handle(request, legacy=False)

    async def store(self, request: Request) -> Response:
        return await self._handle(request, legacy=True)

    async def _handle(self, request: Request, *, legacy: bool) -> Response:
        try:
            accepted = await self._accept(request, legacy=legacy)
            if accepted.envelope.items:
                client = request.client.host if request.client else None
                try:
                    await self._inbox.put(accepted.project_id, time.time(), client, accepted.body)
                except Exception:
                    raise IngestError(503, "the inbox is unavailable; retry later", {"Retry-After": "5"}) from None
                METRICS.inc("stackwatch_ingest_envelopes_total")
                METRICS.inc("stackwatch_ingest_bytes_total", len(accepted.body))
        except IngestError as exc:
            error = {"X-Sentry-Error": header_safe(exc.message)}
            return _response(exc.status, {"detail": exc.message}, {**error, **exc.headers})
        except ClientDisconnect:
            return _response(400, {"detail": "client disconnected"})
        return _response(
            200, {"id": accepted.event_id}, {"X-Sentry-Rate-Limits": rate_limits_header(accepted.held_back)}
        )

    async def _accept(self, request: Request, *, legacy: bool) -> _Accepted:
        raw_id = request.path_params["project_id"]
        if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 18:  # "¹".isdigit(), but int("¹") fails
            raise IngestError(400, f"invalid project id {raw_id[:40]!a}: must be a number")
        project_id = int(raw_id)
        key = key_from_request(request.headers, request.query_params)
        if key is not None:
            await self._authorize(key, project_id)
        if self._disk is not None:  # before the body is read: a refused body need not be received
            await self._check_disk(self._disk)
        data = await self._body(request)
        envelope = compat.store_to_envelope(data, self._settings.max_envelope_bytes) if legacy else _parse(data)
        if key is None:
            key = key_from_dsn(envelope.headers.get("dsn"))
            if key is None:
                raise IngestError(401, "missing DSN key: send X-Sentry-Auth, sentry_key or an envelope dsn")
        info = await self._authorize(key, project_id)  # a cache hit when it was checked before the body
        check_attachment_caps(envelope.items, self._settings)
        kept, events, payload_event_id = self._check_items(envelope)
        if events > 1:  # the digest would keep the first and count the rest as duplicates: see docs/ingest.md
            raise IngestError(400, f"envelope has {events} event items; an envelope carries at most one event")
        self._rate_limit(key, info, events)
        kept, held_back = limit_attachments(self._limiter, key, attachment_quota(info, self._settings), kept)
        event_id = _event_id(envelope, kept, payload_event_id)
        changed = len(kept) != len(envelope.items) or legacy or envelope.headers.get("event_id") != event_id
        if event_id is not None:
            envelope.headers["event_id"] = event_id
        envelope.items = kept
        body = serialize_envelope(envelope) if changed else data
        return _Accepted(project_id, envelope, body, event_id, held_back)

    async def _check_disk(self, disk: DiskUsage) -> None:
        """Refuse with 429 while the store is at its disk limit (the last resort: the retention pass evicts
        first). Cheap per request: the usage is measured again at most every second or few (on PostgreSQL in a
        thread, being a query). Nothing is written before this check, so a refused envelope leaves nothing
        behind, and everything accepted before is digested as usual."""
        if disk.stale() and disk.blocking:
            await to_thread.run_sync(disk.current)
        full = disk.full()
        if full != self._disk_full:
            self._disk_full = full
            used, limit = disk.current() / (1 << 20), disk.limit_bytes / (1 << 20)
            if full:
                log.warning(
                    "the store takes %.1f MB of its %.0f MB (STACKWATCH_MAX_DISK_MB): ingest refuses new envelopes "
                    "with 429 until it takes less",
                    used,
                    limit,
                )
            else:
                log.warning("the store takes %.1f MB of its %.0f MB again: ingest accepts envelopes", used, limit)
        if full:
            raise IngestError(
                429,
                f"the server's disk limit of {self._settings.max_disk_mb} MB is reached: new events are refused "
                "until older ones are deleted; retry later",
                {
                    "Retry-After": str(DISK_RETRY_AFTER),
                    # Every category, for the whole server (not one key): Sentry SDKs hold back all of it.
                    "X-Sentry-Rate-Limits": f"{DISK_RETRY_AFTER}::organization",
                },
            )

    async def _authorize(self, key: str, project_id: int) -> KeyInfo:
        hit, info = self._keys.cached(key)
        if not hit:
            info = await to_thread.run_sync(self._keys.load, key)
        if info is None:
            raise IngestError(401, "unknown DSN key")
        if not info.active:
            raise IngestError(403, "DSN key revoked")
        if info.project_id != project_id:
            raise IngestError(403, f"DSN key does not belong to project {project_id}")
        return info

    async def _body(self, request: Request) -> bytes:
        limit = self._settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise IngestError(413, f"body larger than {limit} bytes")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise IngestError(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
        try:
            return decode_body(
                b"".join(chunks), request.headers.get("content-encoding", ""), self._settings.max_envelope_bytes
            )
        except TooLarge as exc:
            raise IngestError(413, str(exc)) from None
        except BadBody as exc:
            raise IngestError(400, str(exc)) from None

    def _check_items(self, envelope: Envelope) -> tuple[list[Item], int, object]:
        """The items to keep (validated), how many are events, and the first event's own ``event_id``.

        Unknown and never-kept item types are dropped here.
        """
        kept = []
        events = 0
        payload_event_id = None
        for index, item in enumerate(envelope.items):
            kind = item.type
            if kind not in KEPT_ITEM_TYPES:
                continue
            cap = self._settings.max_attachment_bytes if kind == "attachment" else self._settings.max_event_bytes
            if len(item.payload) > cap:
                raise IngestError(413, f"item {index} ({kind}) larger than {cap} bytes")
            if kind in _JSON_ITEMS:
                try:
                    value = orjson.loads(item.payload)
                except orjson.JSONDecodeError as exc:
                    raise IngestError(400, f"item {index} ({kind}) is not valid JSON: {exc}") from None
                if not isinstance(value, dict):
                    raise IngestError(400, f"item {index} ({kind}) is not a JSON object")
                if _too_deep(item.payload, value):
                    raise IngestError(400, f"item {index} ({kind}) nests more than {MAX_JSON_DEPTH} levels deep")
                if kind == "event":
                    events += 1
                    payload_event_id = payload_event_id or value.get("event_id")
            kept.append(item)
        return kept, events, payload_event_id

    def _rate_limit(self, key: str, info: KeyInfo, events: int) -> None:
        per_minute = info.rate_limit_per_minute
        if per_minute is None:
            per_minute = self._settings.rate_limit_per_minute
        if events == 0 or per_minute <= 0:
            return
        wait = self._limiter.take(key, per_minute, min(events, per_minute))
        if wait > 0:
            seconds = RateLimiter.retry_after(wait)
            raise IngestError(
                429,
                f"rate limit of {per_minute} events per minute exceeded",
                {
                    "Retry-After": str(seconds),
                    "X-Sentry-Rate-Limits": f"{seconds}:{ERROR_CATEGORIES}:key",
                },
            )


def _too_deep(payload: bytes, value: object) -> bool:
    """Whether ``value`` (parsed from ``payload``) nests deeper than :data:`MAX_JSON_DEPTH`; without recursion."""
    if payload.count(b"{") + payload.count(b"[") <= MAX_JSON_DEPTH:
        return False  # cannot be that deep: the cheap test that almost every event stops at
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = list(current.values()) if isinstance(current, dict) else current
        if isinstance(children, list):
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _parse(data: bytes) -> Envelope:
    try:
        return parse_envelope(data)
    except EnvelopeError as exc:
        raise IngestError(400, f"invalid envelope: {exc}") from None


def _event_id(envelope: Envelope, kept: list[Item], payload_event_id: object) -> str | None:
    """The envelope's event id, normalized; taken from its event, or made up, when the header lacks it."""
    header_id = envelope.headers.get("event_id")
    if header_id is None and not any(item.type in ("event", "attachment") for item in kept):
        return None
    return normalize_event_id(header_id, payload_event_id)
