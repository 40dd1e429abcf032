"""Helpers shared by the core tests: building events and envelopes, sending them, reading the store."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, func, select

from stackwatch.server.digest.normalize import EventContext, NormalizedEvent, normalize_event
from stackwatch.server.ingest.decode import decode_body
from stackwatch.server.ingest.envelope import parse_envelope
from stackwatch.server.storage.payloads import PayloadUnreadable, read_payload
from stackwatch.server.storage.schema import events, issues, metadata
from tests.captures import Captured
from tests.conftest import PYTHON_KEY, Stack

AUTH = f"Sentry sentry_key={PYTHON_KEY}, sentry_version=7, sentry_client=tests/1.0"


def new_id() -> str:
    return uuid.uuid4().hex


def frame(function: str, context_line: str, *, module: str = "app.worker", lineno: int = 10, in_app: bool = True):
    return {
        "filename": module.replace(".", "/") + ".py",
        "module": module,
        "function": function,
        "lineno": lineno,
        "context_line": context_line,
        "in_app": in_app,
    }


def exception_event(
    kind: str = "ValueError",
    value: str = "bad value",
    frames: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A Python error event with one exception and a stack trace."""
    if frames is None:
        frames = [
            frame("handle", "    process(job)", lineno=10),
            frame("process", "    raise ValueError('bad value')", lineno=20),
        ]
    event: dict[str, Any] = {
        "event_id": new_id(),
        "platform": "python",
        "level": "error",
        "exception": {"values": [{"type": kind, "value": value, "stacktrace": {"frames": frames}}]},
    }
    event.update(fields)
    return event


def message_event(message: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": new_id(), "platform": "python", "level": "info", "message": message}
    event.update(fields)
    return event


def envelope(*items: tuple[dict[str, Any], bytes], header: dict[str, Any] | None = None) -> bytes:
    """An envelope with explicit item lengths."""
    lines = [orjson.dumps(header or {})]
    for item_header, payload in items:
        lines.append(orjson.dumps({**item_header, "length": len(payload)}))
        lines.append(payload)
    return b"\n".join(lines) + b"\n"


def event_envelope(event: dict[str, Any], header: dict[str, Any] | None = None) -> bytes:
    if header is None:
        header = {"event_id": event["event_id"]} if "event_id" in event else {}
    return envelope(({"type": "event"}, orjson.dumps(event)), header=header)


def send(
    stack: Stack,
    event: dict[str, Any],
    *,
    project_id: int = 1,
    auth: str = AUTH,
    header: dict[str, Any] | None = None,
) -> httpx.Response:
    return stack.client.post(
        f"/api/{project_id}/envelope/", content=event_envelope(event, header), headers={"X-Sentry-Auth": auth}
    )


def send_ok(stack: Stack, event: dict[str, Any], **kwargs: Any) -> str:
    response = send(stack, event, **kwargs)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def issue_of(stack: Stack, event_id: str) -> int:
    with stack.services.engine.connect() as connection:
        issue_id = connection.execute(select(events.c.issue_id).where(events.c.event_id == event_id)).scalar()
    assert issue_id is not None, f"event {event_id} was not stored"
    return int(issue_id)


def count(stack: Stack, table: Any, *conditions: Any) -> int:
    with stack.services.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one())


def issue_count(stack: Stack, project_id: int = 1) -> int:
    return count(stack, issues, issues.c.project_id == project_id)


def captured_items(captured: Captured) -> list[tuple[dict[str, Any], bytes]]:
    encoding = next((v for k, v in captured.headers.items() if k.lower() == "content-encoding"), "")
    parsed = parse_envelope(decode_body(captured.body, encoding, 1 << 30))
    return [(item.headers, item.payload) for item in parsed.items]


def captured_event(captured: Captured) -> dict[str, Any]:
    """The first event payload of a captured request, as a fresh dict."""
    for headers, payload in captured_items(captured):
        if headers.get("type") == "event":
            return copy.deepcopy(orjson.loads(payload))
    raise AssertionError(f"{captured.name} has no event item")


def normalized(raw: dict[str, Any], **context: Any) -> NormalizedEvent:
    values: dict[str, Any] = {"project_id": 1, "received_at": 1_800_000_000.0, "client_ip": "198.51.100.7"}
    values.update(context)
    return normalize_event(copy.deepcopy(raw), EventContext(**values))


def stored_bytes(engine: Engine) -> bytes:
    """Every value of every row of every table, compressed payloads decompressed: what a leak check searches."""
    chunks: list[bytes] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes):
                        try:  # payloads open with the dictionary their frame names
                            chunks.append(read_payload(connection, value))
                        except PayloadUnreadable:
                            chunks.append(value)
                    elif value is not None:
                        chunks.append(str(value).encode())
    return b"\n".join(chunks)


def crawl_api(get: Callable[..., httpx.Response]) -> bytes:
    """Every answer of the REST API about what is stored: projects, issues, issue details, events, runs.

    ``get(path, **params)`` requests ``/api/v1<path>`` with a token.
    """
    bodies: list[bytes] = []

    def fetch(path: str, **params: Any) -> Any:
        response = get(path, **params)
        assert response.status_code == 200, (path, response.text)
        bodies.append(response.content)
        return response.json()

    runs: set[str] = set()
    for project in fetch("/projects"):
        for issue in fetch(f"/projects/{project['slug']}/issues", limit=100)["data"]:
            fetch(f"/issues/{issue['id']}", hours=24 * 90)
            for event in fetch(f"/issues/{issue['id']}/events", limit=100)["data"]:
                fetch(f"/events/{event['event_id']}")
                if event.get("run_id"):
                    runs.add(event["run_id"])
    for run in sorted(runs):
        fetch(f"/runs/{run}/events")
    return b"\n".join(bodies)


OWN_SCRIPT = re.compile(r'<script src="/static/[\w./-]+\.js" defer></script>')


def foreign_markup(page_text: str) -> list[str]:
    """Script tags other than the dashboard's own (``<script src="/static/…" defer>``), and ``style=``
    attributes: what escaping should make impossible for anything that came from an event."""
    rest = OWN_SCRIPT.sub("", page_text)
    return re.findall(r"<script[^>]*>|\sstyle=", rest, re.IGNORECASE)
