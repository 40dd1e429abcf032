"""Turn an event as an SDK sent it into the one shape the rest of Stackwatch reads.

Everything here must accept anything a client can put in valid JSON: a field of the wrong type is dropped or
coerced, never a reason to fail the whole event. Protocol variants (exception as a list or under ``values``,
tags as a dict or a list of pairs, ``message`` as a string or an object) are folded into one form.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from stackwatch.scrub import ScrubOptions, scrub_event
from stackwatch.server.digest.logentry import MESSAGE_KEYS, normalize_logentry
from stackwatch.server.digest.timestamps import MAX_FUTURE, MAX_PAST, Clock, correct_timestamps, read_timestamp
from stackwatch.server.storage.schema import LEVELS

__all__ = ["MAX_FUTURE", "MAX_PAST", "EventContext", "NormalizedEvent", "as_dict", "normalize_event"]

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_LEVEL_ALIASES = {"critical": "fatal", "warn": "warning", "log": "info", "trace": "debug", "notice": "info"}
MAX_TAGS = 100
MAX_TAG_KEY = 200
MAX_TAG_VALUE = 200
WORKFLOW_KEYS = ("component", "workflow_id", "run_id", "step_id", "tenant")


@dataclass(frozen=True, slots=True)
class EventContext:
    project_id: int
    received_at: float
    client_ip: str | None
    collect_ips: bool = True
    envelope_event_id: str | None = None
    scrub: ScrubOptions = field(default_factory=ScrubOptions)
    # Key for the hash that stands in for a user identity (email, IP) that redaction removed from the event.
    identity_key: bytes = b""
    # The window an event's timestamp must fall in (seconds before and after ``received_at``; before: the
    # project's retention), and the envelope header's ``sent_at`` (see digest/timestamps.py).
    max_past: float = MAX_PAST
    max_future: float = MAX_FUTURE
    sent_at: float | None = None


@dataclass(slots=True)
class NormalizedEvent:
    event_id: str
    project_id: int
    timestamp: float
    received_at: float
    level: str
    platform: str
    environment: str | None
    release: str | None
    tags: dict[str, str]
    workflow: dict[str, str | None]
    user_key: str | None
    exceptions: list[dict[str, Any]]
    handled: bool
    data: dict[str, Any]
    fingerprint: list[str] | None = None


def as_dict(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one: clients send anything anywhere."""
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.strip()
    return text[:limit] if text else None


def normalize_event_id(*candidates: Any) -> str:
    for candidate in candidates:
        if isinstance(candidate, str):
            text = candidate.replace("-", "").lower()
            if _HEX32.match(text):
                return text
    return uuid.uuid4().hex


def parse_timestamp(value: Any, received_at: float) -> float:
    """The time of a session or client report: as sent, unless unreadable or ahead of the receive time."""
    stamp = read_timestamp(value)
    if stamp is None or stamp <= 0 or stamp > received_at + MAX_FUTURE:
        return received_at
    return stamp


def normalize_level(value: Any) -> str:
    text = value.lower().strip() if isinstance(value, str) else "error"
    text = _LEVEL_ALIASES.get(text, text)
    return text if text in LEVELS else "error"


def _tags(value: Any) -> dict[str, str]:
    pairs: list[Any]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = [pair for pair in value if isinstance(pair, (list, tuple)) and len(pair) == 2]
    else:
        return {}
    tags: dict[str, str] = {}
    for key, raw in pairs[:MAX_TAGS]:
        name = _text(key, MAX_TAG_KEY)
        text = _text(raw, MAX_TAG_VALUE)
        if name and text is not None:
            tags[name] = text
    return tags


def _exceptions(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = value.get("values")
    if not isinstance(value, list):
        return []
    exceptions = []
    for entry in value:
        if not isinstance(entry, dict):
            continue
        stacktrace = entry.get("stacktrace")
        frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
        entry = dict(entry)
        entry["stacktrace"] = (
            {"frames": [f for f in frames if isinstance(f, dict)]} if isinstance(frames, list) else None
        )
        if entry["stacktrace"] is None:
            del entry["stacktrace"]
        exceptions.append(entry)
    return exceptions


def _user(data: dict[str, Any], context: EventContext) -> dict[str, Any] | None:
    user = data.get("user")
    if not isinstance(user, dict):
        return None
    user = dict(user)
    if user.get("ip_address") == "{{auto}}":
        if context.collect_ips and context.client_ip:
            user["ip_address"] = context.client_ip
        else:
            del user["ip_address"]
    elif not context.collect_ips:
        user.pop("ip_address", None)
    return user or None


def _user_key(user: dict[str, Any] | None, scrubbed: dict[str, Any] | None, key: bytes) -> str | None:
    """The identity that counts distinct users; a keyed hash of it when redaction removed it from the event."""
    if not user:
        return None
    for name, prefix in (("id", "id"), ("email", "email"), ("username", "username"), ("ip_address", "ip")):
        text = _text(user.get(name), 300)
        if text:
            if scrubbed is None or _text(scrubbed.get(name), 300) != text:
                digest = hmac.new(key, f"{prefix}:{text}".encode(), hashlib.sha256).hexdigest()[:32]
                return f"{prefix}#{digest}"
            return f"{prefix}:{text}"
    return None


def _workflow(tags: dict[str, str], contexts: dict[str, Any]) -> dict[str, str | None]:
    """The MeshHook workflow columns: tags win, the ``workflow`` context fills the gaps."""
    context = as_dict(contexts.get("workflow"))
    found: dict[str, str | None] = {}
    for key in WORKFLOW_KEYS:
        found[key] = tags.get(key) or _text(context.get(key), MAX_TAG_VALUE)
    if found["step_id"] is None:
        found["step_id"] = _text(context.get("step"), MAX_TAG_VALUE)
    return found


def _handled(exceptions: list[dict[str, Any]]) -> bool:
    for entry in exceptions:
        mechanism = entry.get("mechanism")
        if isinstance(mechanism, dict) and mechanism.get("handled") is False:
            return False
    return True


def normalize_event(raw: dict[str, Any], context: EventContext) -> NormalizedEvent:
    """Normalize and redact one event: everything derived from it (title, tags, columns) is already scrubbed."""
    data = dict(raw)
    user = _user(data, context)  # before redaction, so an address filled in for {{auto}} is redacted too
    if user is None:
        data.pop("user", None)
    else:
        data["user"] = user
    data = scrub_event(data, context.scrub)
    scrubbed_user = data.get("user")
    event_id = normalize_event_id(context.envelope_event_id, data.get("event_id"))
    clock = Clock(context.received_at, context.max_past, context.max_future, context.sent_at)
    timestamp = correct_timestamps(data, clock)
    level = normalize_level(data.get("level"))
    tags = _tags(data.get("tags"))
    contexts = as_dict(data.get("contexts"))
    exceptions = _exceptions(data.get("exception"))
    logentry = normalize_logentry(data, context.scrub)
    fingerprint = data.get("fingerprint")
    if not (isinstance(fingerprint, list) and fingerprint and all(isinstance(p, str) for p in fingerprint)):
        fingerprint = None

    data.update(event_id=event_id, timestamp=timestamp, level=level, tags=tags, contexts=contexts)
    data["received"] = context.received_at
    for key in MESSAGE_KEYS[1:]:
        data.pop(key, None)
    for name, value in (
        ("exception", {"values": exceptions} if exceptions else None),
        ("logentry", logentry),
        ("user", scrubbed_user if isinstance(scrubbed_user, dict) else None),
    ):
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return NormalizedEvent(
        event_id=event_id,
        project_id=context.project_id,
        timestamp=timestamp,
        received_at=context.received_at,
        level=level,
        platform=_text(data.get("platform"), 64) or "other",
        environment=_text(data.get("environment"), 64),
        release=_text(data.get("release"), 250),
        tags=tags,
        workflow=_workflow(tags, contexts),
        user_key=_user_key(user, as_dict(scrubbed_user), context.identity_key),
        exceptions=exceptions,
        handled=_handled(exceptions),
        data=data,
        fingerprint=fingerprint,
    )
