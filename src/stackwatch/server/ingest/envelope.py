"""The Sentry envelope format: a JSON header line, then items of a JSON header line and a payload.

An item's payload is exactly ``length`` bytes when its header has ``length``; otherwise it runs to the next
newline (or the end). A newline after each payload is expected but the last one may be missing. The parser
is used by ingest (to validate and to filter before the 200) and by digest (to read what ingest stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Envelope", "EnvelopeError", "Item", "parse_envelope", "serialize_envelope"]

MAX_ITEMS = 1000


class EnvelopeError(ValueError):
    """The envelope is malformed; the message says where."""


@dataclass(slots=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))


@dataclass(slots=True)
class Envelope:
    headers: dict[str, Any]
    items: list[Item] = field(default_factory=list)


def _json_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} is not a JSON object")
    return value


def _length(headers: dict[str, Any], index: int) -> int | None:
    length = headers.get("length")
    if length is None:
        return None
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise EnvelopeError(f"item {index}: length must be a non-negative integer")
    return length


def parse_envelope(data: bytes) -> Envelope:
    if not data.strip():
        raise EnvelopeError("empty envelope")
    end = data.find(b"\n")
    end = len(data) if end < 0 else end
    envelope = Envelope(_json_object(data[:end], "envelope header"))
    pos = end + 1
    size = len(data)
    while pos < size:
        end = data.find(b"\n", pos)
        end = size if end < 0 else end
        line = data[pos:end]
        pos = end + 1
        if not line.strip():
            continue  # blank line between items, or the trailing newline
        index = len(envelope.items)
        if index >= MAX_ITEMS:
            raise EnvelopeError(f"more than {MAX_ITEMS} items")
        headers = _json_object(line, f"item {index} header")
        if not isinstance(headers.get("type"), str):
            raise EnvelopeError(f"item {index} header has no type")
        length = _length(headers, index)
        if length is None:
            end = data.find(b"\n", pos)
            end = size if end < 0 else end
            payload = data[pos:end]
            pos = end + 1
        else:
            if pos + length > size:
                raise EnvelopeError(f"item {index}: truncated, length {length} but {max(size - pos, 0)} bytes left")
            payload = data[pos : pos + length]
            pos += length
            if pos < size and data[pos : pos + 1] != b"\n":
                raise EnvelopeError(f"item {index}: payload longer than its length {length}")
            pos += 1
        envelope.items.append(Item(headers, payload))
    return envelope


def serialize_envelope(envelope: Envelope) -> bytes:
    parts = [orjson.dumps(envelope.headers)]
    for item in envelope.items:
        headers = {**item.headers, "length": len(item.payload)}
        parts.append(orjson.dumps(headers))
        parts.append(item.payload)
    return b"\n".join(parts) + b"\n"
