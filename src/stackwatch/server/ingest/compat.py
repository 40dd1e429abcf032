"""Sentry protocol quirks kept in one place.

The legacy ``/store/`` endpoint takes a single event as JSON, or — from old SDKs — as base64 of
zlib-compressed JSON. It is turned into a one-item envelope here, so everything after ingest sees envelopes.
"""

from __future__ import annotations

import base64
import binascii
import zlib

import orjson

from stackwatch.server.ingest.decode import TooLarge, inflate_bounded
from stackwatch.server.ingest.envelope import Envelope, Item
from stackwatch.server.ingest.errors import IngestError

__all__ = ["store_to_envelope"]


def _legacy_payload(data: bytes, limit: int) -> bytes:
    stripped = data.strip()
    if stripped.startswith(b"{"):
        return stripped
    try:
        compressed = base64.b64decode(stripped, validate=True)
        return inflate_bounded(compressed, limit)
    except TooLarge as exc:
        raise IngestError(413, str(exc)) from None
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise IngestError(400, f"store body is neither JSON nor base64 zlib JSON: {exc}") from None


def store_to_envelope(data: bytes, limit: int) -> Envelope:
    if not data.strip():
        raise IngestError(400, "empty body")
    payload = _legacy_payload(data, limit)
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"event is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise IngestError(400, "event is not a JSON object")
    # Old SDKs sent transactions to /store/ too; they are accepted and dropped like in envelopes.
    kind = "transaction" if event.get("type") == "transaction" else "event"
    headers = {"event_id": event["event_id"]} if isinstance(event.get("event_id"), str) else {}
    return Envelope(headers, [Item({"type": kind}, payload)])
