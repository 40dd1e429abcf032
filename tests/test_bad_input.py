"""Whatever a client sends, ingest answers with the right 4xx (and ``X-Sentry-Error``), never a 5xx, and loses
nothing it accepted before or after.

One table of bad requests runs against a real ``stackwatch serve`` process (both backends), between good events
sent before and after; the good ones must all be digested and readable through the REST API at the end.
"""

from __future__ import annotations

import gzip
import json
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache

import httpx
import pytest
from sqlalchemy import func, select, update

from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import events, project_keys
from tests.conftest import NODE_KEY, PYTHON_KEY, ServerFactory, ServerProcess

pytestmark = pytest.mark.slow

REVOKED_KEY = "revokedpublickey0001"
MAX_BODY = 2 * 1024 * 1024
MAX_ENVELOPE = 4 * 1024 * 1024
MAX_EVENT = 64 * 1024
LIMITS = {
    "STACKWATCH_MAX_BODY_BYTES": str(MAX_BODY),
    "STACKWATCH_MAX_ENVELOPE_BYTES": str(MAX_ENVELOPE),
    "STACKWATCH_MAX_EVENT_BYTES": str(MAX_EVENT),
}
ENVELOPE_PATH = "/api/1/envelope/"


# --- building requests ----------------------------------------------------------------------------------------


def auth(key: str) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}, sentry_client=stackwatch-tests/1.0"}


def envelope(items: list[tuple[dict[str, object], bytes]], header: dict[str, object] | None = None) -> bytes:
    lines = [json.dumps(header or {}).encode()]
    for headers, payload in items:
        lines += [json.dumps(headers).encode(), payload]
    return b"\n".join(lines) + b"\n"


def item(payload: bytes, kind: str = "event") -> tuple[dict[str, object], bytes]:
    return {"type": kind, "length": len(payload)}, payload


def event_payload(event_id: str, message: str, **extra: object) -> bytes:
    event = {"event_id": event_id, "message": message, "level": "error", "platform": "python"}
    return json.dumps({**event, "timestamp": time.time(), **extra}).encode()


def event_envelope(event_id: str, message: str, **extra: object) -> bytes:
    return envelope([item(event_payload(event_id, message, **extra))], {"event_id": event_id})


def nested(depth: int) -> bytes:
    """An event whose ``extra`` nests ``depth`` lists deep."""
    inner = b"[" * depth + b"]" * depth
    return b'{"message": "deep", "extra": {"deep": ' + inner + b"}}"


@cache
def gzip_bomb(gib: int = 1) -> bytes:
    """A valid gzip stream of ``gib`` GiB of zeros (about 1 MB), built without compressing a GiB.

    After a full flush the compressor starts from an empty window, so every further MiB of zeros compresses to
    the same bytes: compress two MiB, repeat the second, and write the trailer (CRC-32 and size) ourselves.
    """
    mib = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)[:-8]  # the final empty block, without the trailer
    crc = 0
    for _ in range(gib * 1024):
        crc = zlib.crc32(mib, crc)
    size = gib << 30
    return first + repeated * (size // len(mib) - 1) + end + struct.pack("<II", crc, size & 0xFFFFFFFF)


def chunks(total: int, size: int = 64 * 1024) -> Callable[[], Iterator[bytes]]:
    """A body sent with ``Transfer-Encoding: chunked`` (no ``Content-Length``), as Node sends it."""

    def generate() -> Iterator[bytes]:
        sent = 0
        while sent < total:
            piece = min(size, total - sent)
            sent += piece
            yield b"x" * piece

    return generate


# --- the table --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    body: bytes | Callable[[], Iterator[bytes]] = b""
    key: str | None = PYTHON_KEY  # sent in X-Sentry-Auth; None sends no key header
    path: str = ENVELOPE_PATH
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""  # expected in X-Sentry-Error (case-insensitive)
    unstored_event_id: str | None = None  # an event id that must not be stored


def _id() -> str:
    return uuid.uuid4().hex


def bad_cases() -> list[Case]:
    good = event_envelope(_id(), "never stored")
    unknown_id = _id()
    truncated = event_envelope(_id(), "truncated")
    payload = event_payload(_id(), "wrong length")
    gzip_junk = gzip.compress(good)[:-20] + b"\x00" * 20
    return [
        Case("wrong key", 401, good, key="0123456789abcdef0123456789abcdef", error="unknown DSN key"),
        Case("missing key", 401, good, key=None, error="missing DSN key"),
        Case("unparsable auth header", 401, good, key=None, headers={"X-Sentry-Auth": "Sentry garbage"}),
        Case(
            "wrong key in the envelope dsn",
            401,
            key=None,
            error="unknown DSN key",
            body=envelope([item(event_payload(_id(), "x"))], {"dsn": "http://nosuchkey@127.0.0.1/1"}),
        ),
        Case("key with a NUL byte", 401, good, key=None, path=ENVELOPE_PATH + "?sentry_key=%00abc"),
        Case("very long key", 401, good, key="k" * 5000),
        Case("revoked key", 403, good, key=REVOKED_KEY, error="revoked"),
        Case("key of another project", 403, good, key=NODE_KEY, error="does not belong"),
        Case("non-numeric project id", 400, good, path="/api/python/envelope/", error="invalid project id"),
        Case("negative project id", 400, good, path="/api/-1/envelope/", error="invalid project id"),
        Case("fractional project id", 400, good, path="/api/1.0/envelope/", error="invalid project id"),
        Case("superscript digit project id", 400, good, path="/api/%C2%B9/envelope/", error="invalid project id"),
        Case("project id too long", 400, good, path=f"/api/{'9' * 30}/envelope/", error="invalid project id"),
        Case("truncated envelope", 400, truncated[: len(truncated) - 40], error="truncated"),
        Case(
            "item length too long",
            400,
            error="truncated",
            body=envelope([({"type": "event", "length": len(payload) + 50}, payload)]),
        ),
        Case(
            "item length too short",
            400,
            error="longer than its length",
            body=envelope([({"type": "event", "length": len(payload) - 5}, payload)]),
        ),
        Case("item length not a number", 400, body=envelope([({"type": "event", "length": "12"}, payload)])),
        Case("envelope header not JSON", 400, b"{not json\n" + good.split(b"\n", 1)[1], error="envelope header"),
        Case("item header without type", 400, envelope([({"length": len(payload)}, payload)]), error="no type"),
        Case("invalid JSON in an event item", 400, envelope([item(b'{"message": "unclosed')]), error="not valid JSON"),
        Case("event item not an object", 400, envelope([item(b'["a list"]')]), error="not a JSON object"),
        Case("invalid UTF-8 in an event item", 400, envelope([item(b'{"message": "caf\xe9 \xff\xfe"}')])),
        Case("invalid UTF-8 in the envelope header", 400, b'{"event_id": "\xff\xfe"}\n' + good.split(b"\n", 1)[1]),
        Case(
            "unknown item type",
            200,
            unstored_event_id=unknown_id,
            body=envelope(
                [item(b'{"something": "new"}', "frobnicate"), item(b"\xff\xfe not json", "other")],
                {"event_id": unknown_id},
            ),
        ),
        Case("corrupt gzip", 400, gzip_junk, headers={"Content-Encoding": "gzip"}, error="invalid gzip"),
        Case("not gzip at all", 400, good, headers={"Content-Encoding": "gzip"}, error="invalid gzip"),
        Case("corrupt zstd", 400, b"\x28\xb5\x2f\xfd garbage", headers={"Content-Encoding": "zstd"}),
        Case("corrupt brotli", 400, b"\xff\xff\xff garbage", headers={"Content-Encoding": "br"}),
        Case("unsupported encoding", 400, good, headers={"Content-Encoding": "compress"}, error="unsupported"),
        Case(
            "decompression bomb (1 GiB of zeros)",
            413,
            gzip_bomb(),
            headers={"Content-Encoding": "gzip"},
            error="decompressed body exceeds",
        ),
        Case("oversized body", 413, b"x" * (MAX_BODY + 1024), error="body larger than"),
        Case("oversized chunked body", 413, chunks(MAX_BODY + 1024), error="body larger than"),
        Case(
            "oversized event item",
            413,
            error="larger than",
            body=envelope([item(event_payload(_id(), "big", extra={"blob": "x" * (MAX_EVENT + 10)}))]),
        ),
        Case("deeply nested JSON (300 levels)", 400, envelope([item(nested(300))])),
        Case("deeply nested JSON (5000 levels)", 400, envelope([item(nested(5000))])),
        Case("empty body", 400, b"", error="empty"),
        Case("whitespace body", 400, b"\n\n  \n", error="empty"),
        Case("store: invalid JSON", 400, b"{nope", path="/api/1/store/"),
        Case("store: empty body", 400, b"", path="/api/1/store/", error="empty"),
        Case("store: deeply nested JSON", 400, nested(300), path="/api/1/store/"),
    ]


def good_requests(tag: str) -> Iterator[tuple[str, str, dict[str, str], bytes]]:
    """(event_id, path, headers, body) of good events, authenticated and encoded the ways SDKs do it."""
    event_id = _id()
    yield event_id, ENVELOPE_PATH, auth(PYTHON_KEY), event_envelope(event_id, f"{tag}: plain")
    event_id = _id()
    body = gzip.compress(event_envelope(event_id, f"{tag}: gzip"))
    yield event_id, ENVELOPE_PATH, {**auth(PYTHON_KEY), "Content-Encoding": "gzip"}, body
    event_id = _id()
    path = f"{ENVELOPE_PATH}?sentry_key={PYTHON_KEY}&sentry_version=7"
    yield event_id, path, {}, event_envelope(event_id, f"{tag}: query key")
    event_id = _id()
    header = {"event_id": event_id, "dsn": f"http://{PYTHON_KEY}@127.0.0.1/1"}
    yield event_id, ENVELOPE_PATH, {}, envelope([item(event_payload(event_id, f"{tag}: envelope dsn"))], header)
    event_id = _id()
    yield event_id, "/api/1/store/", auth(PYTHON_KEY), event_payload(event_id, f"{tag}: legacy store")
    event_id = _id()  # valid but odd: NUL characters, non-ASCII, fields of the wrong type
    odd = event_payload(
        event_id,
        f"{tag}: odd \x00 näïve ☃",
        tags={"component": "a\x00b", "n": 5, "bad": {"x": 1}},
        user="not-an-object",
        timestamp="not a time",
        level=7,
        exception={"values": "nope"},
    )
    yield event_id, ENVELOPE_PATH, auth(PYTHON_KEY), envelope([item(odd)], {"event_id": event_id})
    event_id = _id()  # deep, but within the limit
    deep = json.loads(nested(100))
    yield event_id, ENVELOPE_PATH, auth(PYTHON_KEY), event_envelope(event_id, f"{tag}: deep", extra=deep["extra"])


# --- the test ---------------------------------------------------------------------------------------------------


def send(
    server: ServerProcess, path: str, body: bytes | Callable[[], Iterator[bytes]], headers: dict[str, str]
) -> httpx.Response:
    content = body() if callable(body) else body
    return httpx.post(server.base_url + path, content=content, headers=headers, timeout=30)


def send_good(server: ServerProcess, tag: str) -> dict[str, str]:
    sent = {}
    for event_id, path, headers, body in good_requests(tag):
        response = send(server, path, body, headers)
        assert response.status_code == 200, (
            f"good event ({tag}, {path}) refused: {response.status_code} {response.text}"
        )
        assert response.json()["id"] == event_id
        sent[event_id] = tag
    return sent


def api(server: ServerProcess, path: str) -> httpx.Response:
    token = server.token
    return httpx.get(f"{server.base_url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_bad_input_is_refused_and_nothing_accepted_is_lost(start_server: ServerFactory, services: Services) -> None:
    with services.engine.begin() as connection:  # revoked before its first use, so no cache has it as active
        accounts.create_key(connection, 1, "revoked", public_key=REVOKED_KEY)
        connection.execute(update(project_keys).where(project_keys.c.public_key == REVOKED_KEY).values(active=False))
    server = start_server(**LIMITS)

    good = send_good(server, "before")
    failures = []
    unstored = []
    for case in bad_cases():
        headers = {**(auth(case.key) if case.key else {}), **case.headers}
        try:
            response = send(server, case.path, case.body, headers)
        except httpx.HTTPError as exc:
            failures.append(f"{case.name}: no answer ({exc!r})")
            continue
        problems = []
        if response.status_code != case.status:
            problems.append(f"status {response.status_code}, expected {case.status} ({response.text[:200]!r})")
        if response.status_code >= 500:
            problems.append("a 5xx for client input")
        error = response.headers.get("x-sentry-error")
        if case.status >= 400 and not error:
            problems.append("no X-Sentry-Error header")
        if case.error and error and case.error.lower() not in error.lower():
            problems.append(f"X-Sentry-Error {error!r} does not mention {case.error!r}")
        if problems:
            failures.append(f"{case.name}: {'; '.join(problems)}")
        if case.unstored_event_id:
            unstored.append(case.unstored_event_id)
    assert server.process is not None and server.process.poll() is None, "the server died during the bad inputs"

    health = httpx.get(f"{server.base_url}/healthz", timeout=5)
    assert health.status_code == 200, health.text
    ready = httpx.get(f"{server.base_url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["database"] == "ok", ready.text
    good.update(send_good(server, "after"))
    server.wait_digested(timeout=30)
    assert not failures, "bad input answered wrongly:\n" + "\n".join(failures)

    for event_id, tag in good.items():
        response = api(server, f"/events/{event_id}")
        assert response.status_code == 200, f"accepted event {event_id} ({tag}) was lost: {response.text}"
        assert response.json()["data"]["event_id"] == event_id
    for event_id in unstored:
        assert api(server, f"/events/{event_id}").status_code == 404, f"event {event_id} should not be stored"
    with services.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(events)).scalar_one()
    assert stored == len(good), f"{stored} events stored, expected exactly the {len(good)} good ones"
