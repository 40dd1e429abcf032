"""What an issue is called: title, culprit, type and value, derived from its latest event, as Sentry shows them.

* **Title**: ``Type: value`` of the main exception (the last of the chain: SDKs list the cause first), its first
  line; a message event's message, filled in with its params (``logentry.formatted``, see digest/messages.py).
* **Culprit** (where it happened), the first that says something: the ``culprit`` the SDK sent, the
  ``transaction``, the innermost in-app frame of the main exception's stack trace (the innermost frame when none is
  in-app) written in its platform's style (:data:`CULPRIT_STYLES`), the ``logger``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stackwatch.server.digest.normalize import NormalizedEvent, as_dict

__all__ = ["CULPRIT_STYLES", "Summary", "culprit", "stored_title", "summarize"]

TITLE_LIMIT = 200
CULPRIT_LIMIT = 500

# How a frame names where it happened, by platform (the frame's own, else the event's). Sentry's forms:
# JavaScript ``fn(file)``; native code, where the module is a binary's path, the function alone; every other
# platform (Python, Java, .NET, PHP, Ruby, Go, …) ``module in fn``.
CULPRIT_STYLES: dict[str, str] = {
    "javascript": "{function}({where})",
    "node": "{function}({where})",
    "native": "{function}",
    "cocoa": "{function}",
    "objc": "{function}",
}
_DEFAULT_STYLE = "{where} in {function}"


@dataclass(frozen=True, slots=True)
class Summary:
    title: str
    culprit: str
    type: str
    value: str


def _first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= TITLE_LIMIT else line[: TITLE_LIMIT - 1] + "…"


def _word(value: Any) -> str:
    """A field as text: strings stripped, numbers written out, anything else (objects, lists) empty."""
    if isinstance(value, str):
        return value.strip()
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def frame_culprit(frame: dict[str, Any], platform: str) -> str:
    """A frame as a culprit, in its platform's style; empty when it names no place (no module nor file)."""
    platform = _word(frame.get("platform")) or platform
    style = CULPRIT_STYLES.get(platform, _DEFAULT_STYLE)
    where = _word(frame.get("module")) or _word(frame.get("filename")) or _word(frame.get("abs_path"))
    if not where and "{where}" in style:
        return ""
    return style.format(function=_word(frame.get("function")) or "?", where=where)


def stack_culprit(frames: list[dict[str, Any]], platform: str) -> str:
    """The innermost in-app frame that names a place; else the innermost frame not known to be outside the app
    (nobody said, and no rule guessed it out: a dependency's frames are no culprit); else the innermost frame."""
    for wanted in (True, None):
        for frame in reversed(frames):
            flag = frame.get("in_app")
            if (flag is True) if wanted else not isinstance(flag, bool):
                found = frame_culprit(frame, platform)
                if found:
                    return found
    return next(filter(None, (frame_culprit(frame, platform) for frame in reversed(frames))), "")


def _frames(stacktrace: Any) -> list[dict[str, Any]]:
    frames = as_dict(stacktrace).get("frames")
    return [f for f in frames if isinstance(f, dict)] if isinstance(frames, list) else []


def _main_frames(data: dict[str, Any], exceptions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The frames of the last exception that has any, else the event's own stack trace (``attachStacktrace``)."""
    for exception in reversed(exceptions):
        frames = _frames(exception.get("stacktrace"))
        if frames:
            return frames
    return [] if exceptions else _frames(data.get("stacktrace"))


def culprit(data: dict[str, Any], exceptions: list[dict[str, Any]]) -> str:
    """Where the event happened, by the rule in the module's docstring."""
    found = _word(data.get("culprit")) or _word(data.get("transaction"))
    if not found:
        found = stack_culprit(_main_frames(data, exceptions), _word(data.get("platform")))
    return (found or _word(data.get("logger")))[:CULPRIT_LIMIT]


def summarize(event: NormalizedEvent) -> Summary:
    title, kind, value = _title(event.data, event.exceptions)
    return Summary(title, culprit(event.data, event.exceptions), kind, value)


def stored_title(data: dict[str, Any]) -> str:
    """The title of a stored event (the normalized event its payload holds), as the digest made it.

    Events do not keep their title in a column (it was a tenth of an event's bytes, and is a function of the
    payload): the REST API's event lists derive it here. The normalized ``exception.values`` is the list that
    ``summarize`` looked at.
    """
    values = as_dict(data.get("exception")).get("values")
    exceptions = [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []
    return _title(data, exceptions)[0]


def _title(data: dict[str, Any], exceptions: list[dict[str, Any]]) -> tuple[str, str, str]:
    """Title, type and value."""
    logentry = as_dict(data.get("logentry"))
    message = str(logentry.get("formatted") or logentry.get("message") or "")
    if not exceptions:
        return (_first_line(message) if message.strip() else "<unlabeled event>"), "message", message
    # SDKs list a chain innermost first: the last exception is the one the program saw.
    main = exceptions[-1]
    kind = str(main.get("type") or "")
    value = str(main.get("value") or "")
    if as_dict(main.get("mechanism")).get("synthetic") or not kind:
        # A message captured with a stack trace (``attachStacktrace``): the text is the title.
        return _first_line(value or message or kind or "Error"), (kind or "Error")[:200], value
    return _first_line(f"{kind}: {value}" if value else kind), kind[:200], value
