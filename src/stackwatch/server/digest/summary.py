"""What an issue is called: title, culprit, type and value, derived from its latest event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stackwatch.server.digest.normalize import NormalizedEvent, as_dict

__all__ = ["Summary", "stored_title", "summarize"]

TITLE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Summary:
    title: str
    culprit: str
    type: str
    value: str


def _first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= TITLE_LIMIT else line[: TITLE_LIMIT - 1] + "…"


def _culprit(frames: list[dict[str, Any]]) -> str:
    """The frame where it happened: the innermost in-app frame, or the innermost frame when none is in-app."""
    if not frames:
        return ""
    frame = next((f for f in reversed(frames) if f.get("in_app") is True), frames[-1])
    where = frame.get("module") or frame.get("filename") or frame.get("abs_path") or "?"
    function = frame.get("function") or "?"
    return f"{where} in {function}"[:500]


def summarize(event: NormalizedEvent) -> Summary:
    return _summary(event.data, event.exceptions)


def stored_title(data: dict[str, Any]) -> str:
    """The title of a stored event (the normalized event its payload holds), as the digest made it.

    Events do not keep their title in a column (it was a tenth of an event's bytes, and is a function of the
    payload): the REST API's event lists derive it here. The normalized ``exception.values`` is the list that
    ``summarize`` looked at.
    """
    values = as_dict(data.get("exception")).get("values")
    exceptions = [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []
    return _summary(data, exceptions).title


def _summary(data: dict[str, Any], exceptions: list[dict[str, Any]]) -> Summary:
    logentry = data.get("logentry") or {}
    message = str(logentry.get("formatted") or logentry.get("message") or "")
    fallback_culprit = str(data.get("transaction") or data.get("logger") or "")[:500]
    if exceptions:
        # SDKs list a chain innermost first: the last exception is the one the program saw.
        main = exceptions[-1]
        mechanism = as_dict(main.get("mechanism"))
        kind = str(main.get("type") or "")
        value = str(main.get("value") or "")
        stacktrace = main.get("stacktrace")
        frames = stacktrace["frames"] if isinstance(stacktrace, dict) else []
        if mechanism.get("synthetic") or not kind:
            # A message captured with a stack trace (``attachStacktrace``): the text is the title.
            title = _first_line(value or message or kind or "Error")
            kind = kind or "Error"
        else:
            title = _first_line(f"{kind}: {value}" if value else kind)
        return Summary(title, _culprit(frames) or fallback_culprit, kind[:200], value)
    title = _first_line(message) if message.strip() else "<unlabeled event>"
    return Summary(title, fallback_culprit, "message", message)
