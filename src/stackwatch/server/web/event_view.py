"""One stored event, shaped for the issue page: exceptions, frames, breadcrumbs, contexts, and what was redacted.

Nothing here escapes or marks anything safe: the values stay plain text and the template's autoescape is the one
escaping path (``json_text`` turns a nested value into plain text, which is then escaped like any other string).

Redaction markers come from the event's ``_meta`` (Sentry's shape, written by ``stackwatch.scrub``): the
remarks under a value's path name the rules that removed something from it, e.g.
``_meta.exception.values.0.value[""].rem == [["secret_param", "s", 13, 36]]``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "Breadcrumb",
    "ClockDrift",
    "EventView",
    "ExceptionView",
    "Field",
    "FrameView",
    "event_view",
    "json_text",
]

# Why the digest replaced an event's timestamp (the kinds of ``_meta.timestamp[""].err``, digest/timestamps.py).
DRIFT_REASONS = {
    "past_timestamp": "older than the retention window",
    "future_timestamp": "in the future",
    "clock_drift": "the sender's clock was off",
}


def json_text(value: Any) -> str:
    """A value as plain text: strings as they are, anything else as indented JSON (escaped by the template)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return repr(value)


def _at(node: Any, *path: str | int) -> Any:
    for step in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(str(step))
    return node


def _rules(meta: Any) -> tuple[str, ...]:
    """The rules named by every remark at or below a ``_meta`` node, each once, in the order found."""
    found: list[str] = []
    if isinstance(meta, Mapping):
        for key, child in meta.items():
            if key == "" and isinstance(child, Mapping):
                remarks = child.get("rem")
                for remark in remarks if isinstance(remarks, list) else []:
                    if isinstance(remark, list) and remark and isinstance(remark[0], str):
                        found.append(remark[0])
            else:
                found.extend(_rules(child))
    return tuple(dict.fromkeys(found))


def _values_meta(meta: Any, key: str) -> Any:
    """``_meta`` of a list sent as ``{"values": [...]}`` or as a bare list (normalizing may change the shape)."""
    found = _at(meta, key, "values")
    return _at(meta, key) if found is None else found


def _dict(value: Any) -> dict[str, Any]:
    return {str(key): item for key, item in value.items()} if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        value = value.get("values")
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json_text(value)


@dataclass(frozen=True, slots=True)
class Field:
    """A key and its value (any JSON), with the rules that removed something from it."""

    key: str
    value: Any
    redacted: tuple[str, ...] = ()


def _fields(values: Any, meta: Any) -> list[Field]:
    return [Field(key, value, _rules(_at(meta, key))) for key, value in _dict(values).items()]


@dataclass(frozen=True, slots=True)
class FrameView:
    filename: str
    lineno: Any
    function: str
    in_app: bool
    pre_context: list[str]
    context_line: str | None
    post_context: list[str]
    vars: list[Field]


@dataclass(frozen=True, slots=True)
class ExceptionView:
    type: str
    value: str
    redacted: tuple[str, ...]
    handled: bool | None
    mechanism: str
    frames: list[FrameView]


@dataclass(frozen=True, slots=True)
class Breadcrumb:
    time: str
    category: str
    level: str
    message: str
    redacted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClockDrift:
    """The timestamp an event was sent with, when the digest replaced it: why, and when the event arrived."""

    sent: str
    reason: str
    received: str


@dataclass(frozen=True, slots=True)
class EventView:
    event_id: str
    timestamp: float | None
    drift: ClockDrift | None
    message: str
    message_redacted: tuple[str, ...]
    exceptions: list[ExceptionView]
    breadcrumbs: list[Breadcrumb]
    contexts: list[tuple[str, list[Field]]]
    user: list[Field]
    request: list[Field]
    tags: list[Field]
    extra: list[Field]
    release: str
    environment: str


def _frame(frame: Any, meta: Any) -> FrameView:
    data = _dict(frame)
    context_line = data.get("context_line")
    return FrameView(
        filename=_str(data.get("filename") or data.get("abs_path") or data.get("module") or "?"),
        lineno=data.get("lineno"),
        function=_str(data.get("function") or "?"),
        in_app=data.get("in_app") is True,
        pre_context=[_str(line) for line in _list(data.get("pre_context"))],
        context_line=None if context_line is None else _str(context_line),
        post_context=[_str(line) for line in _list(data.get("post_context"))],
        vars=_fields(data.get("vars"), _at(meta, "vars")),
    )


def _exception(exception: Any, meta: Any) -> ExceptionView:
    data = _dict(exception)
    mechanism = _dict(data.get("mechanism"))
    handled = mechanism.get("handled")
    frames = _list(_dict(data.get("stacktrace")).get("frames"))
    frames_meta = _at(meta, "stacktrace", "frames")
    return ExceptionView(
        type=_str(data.get("type") or "Error"),
        value=_str(data.get("value")),
        redacted=_rules(_at(meta, "value")),
        handled=handled if isinstance(handled, bool) else None,
        mechanism=_str(mechanism.get("type")),
        frames=[_frame(frame, _at(frames_meta, index)) for index, frame in enumerate(frames)],
    )


def _moment(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, OSError, ValueError):
            return str(value)
    return _str(value)


def _breadcrumb(crumb: Any, meta: Any) -> Breadcrumb:
    data = _dict(crumb)
    return Breadcrumb(
        time=_moment(data.get("timestamp")),
        category=_str(data.get("category")),
        level=_str(data.get("level")),
        message=_str(data.get("message")),
        redacted=_rules(_at(meta, "message")),
    )


def _request(data: dict[str, Any], meta: Any) -> list[Field]:
    request = _dict(data.get("request"))
    keys = [key for key in ("method", "url", "query_string") if request.get(key) not in (None, "", [], {})]
    return [Field(key, request[key], _rules(_at(meta, "request", key))) for key in keys]


def _drift(event: dict[str, Any], meta: Any) -> ClockDrift | None:
    """What ``_meta.timestamp`` says the digest did to the timestamp (only the digest writes ``err`` there)."""
    note = _dict(_at(meta, "timestamp", ""))
    errors = [e for e in _list(note.get("err")) if isinstance(e, list) and e and e[0] in DRIFT_REASONS]
    if not errors:
        return None
    reasons = [DRIFT_REASONS[error[0]] for error in errors]
    details = _dict(errors[-1][1]) if len(errors[-1]) > 1 else {}
    sent = note.get("val", details.get("sdk_time"))
    received = event.get("received", details.get("server_time"))
    return ClockDrift(sent=_moment(_epoch(sent)), reason="; ".join(reasons), received=_moment(_epoch(received)))


def _epoch(value: Any) -> Any:
    """A numeric or RFC 3339 string as epoch seconds (for ``_moment``); anything else as it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
    return value


def event_view(data: Mapping[str, Any]) -> EventView:
    """The stored (normalized, scrubbed) event as the page shows it."""
    event, meta = dict(data), data.get("_meta")
    logentry = _dict(event.get("logentry"))
    exceptions_meta = _values_meta(meta, "exception")
    crumbs_meta = _values_meta(meta, "breadcrumbs")
    contexts_meta = _at(meta, "contexts")
    timestamp = event.get("timestamp")
    return EventView(
        event_id=_str(event.get("event_id")),
        timestamp=float(timestamp) if isinstance(timestamp, (int, float)) else None,
        drift=_drift(event, meta),
        message=_str(logentry.get("formatted") or logentry.get("message")),
        message_redacted=_rules(_at(meta, "logentry")) + _rules(_at(meta, "message")),
        exceptions=[_exception(exc, _at(exceptions_meta, i)) for i, exc in enumerate(_list(event.get("exception")))],
        breadcrumbs=[_breadcrumb(c, _at(crumbs_meta, i)) for i, c in enumerate(_list(event.get("breadcrumbs")))],
        contexts=[(name, _fields(ctx, _at(contexts_meta, name))) for name, ctx in _dict(event.get("contexts")).items()],
        user=_fields(event.get("user"), _at(meta, "user")),
        request=_request(event, meta),
        tags=_fields(event.get("tags"), _at(meta, "tags")),
        extra=_fields(event.get("extra"), _at(meta, "extra")),
        release=_str(event.get("release")),
        environment=_str(event.get("environment")),
    )
