"""Grouping, version 1: which events are the same issue.

In order of precedence:

1. An SDK ``fingerprint`` wins; ``{{ default }}`` in it stands for the hash this strategy would compute.
2. The stack traces of every exception in the chain: the in-app frames when the event has any, otherwise all
   frames. A frame contributes its module (or lower-cased file basename), its normalized function and, for
   Python and JavaScript, its source line — never its line number, so moving code does not split an issue.
   Each exception's type is part of it, so a different error raised from the same line is another issue.
3. Without stack traces: exception types and parameterized values.
4. For messages: the log template, or the message with its variable parts replaced by placeholders.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from stackwatch.server.digest.grouping.parameterize import parameterize
from stackwatch.server.digest.normalize import NormalizedEvent

__all__ = ["VERSION", "grouping_hash"]

VERSION = 1
_SOURCE_LINE_PLATFORMS = ("python", "javascript", "node")
_DEFAULT_MARKERS = ("{{ default }}", "{{default}}")

_ADDRESS = re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE)
_ANONYMOUS = {"?", "<anonymous>", "anonymous", "<unknown>", "<module>"}
# Bundlers put content hashes in file names (app.3f2a1c9e.js); they change on every deploy.
_HASHED_NAME = re.compile(r"[.-][0-9a-f]{6,}(?=\.)", re.IGNORECASE)


def _function(name: Any) -> str:
    if not isinstance(name, str):
        return ""
    name = _ADDRESS.sub("", name).strip()
    if name.startswith("async "):
        name = name[6:]
    if name in _ANONYMOUS:
        return "<anonymous>" if name != "<module>" else name
    # ``Object.<anonymous>`` and ``Module._compile`` style receivers are kept: they are stable names.
    return re.sub(r"<lambda>.*", "<lambda>", name)


def _module(frame: dict[str, Any]) -> str:
    module = frame.get("module")
    if isinstance(module, str) and module:
        return module
    for key in ("filename", "abs_path"):
        path = frame.get(key)
        if isinstance(path, str) and path:
            base = re.split(r"[\\/]", path.split("?", 1)[0])[-1].lower()
            return _HASHED_NAME.sub("", base)
    return ""


def _frame_parts(frame: dict[str, Any], with_source: bool) -> list[str]:
    parts = [_module(frame), _function(frame.get("function"))]
    if with_source:
        line = frame.get("context_line")
        if isinstance(line, str) and line.strip():
            parts.append(line.strip()[:300])
    return parts


def _frames(exception: dict[str, Any]) -> list[dict[str, Any]]:
    stacktrace = exception.get("stacktrace")
    return stacktrace["frames"] if isinstance(stacktrace, dict) else []


def _stack_components(event: NormalizedEvent) -> list[str] | None:
    chains = [_frames(exception) for exception in event.exceptions]
    if not any(chains):
        return None
    in_app_only = any(frame.get("in_app") is True for frames in chains for frame in frames)
    with_source = event.platform in _SOURCE_LINE_PLATFORMS
    components = []
    for exception, frames in zip(event.exceptions, chains, strict=True):
        components.append(f"type:{exception.get('type') or ''}")
        for frame in frames:
            if in_app_only and frame.get("in_app") is not True:
                continue
            components.append("frame:" + "|".join(_frame_parts(frame, with_source)))
    return components


def _exception_components(event: NormalizedEvent) -> list[str] | None:
    if not event.exceptions:
        return None
    return [
        f"type:{exception.get('type') or ''}|value:{parameterize(str(exception.get('value') or ''))}"
        for exception in event.exceptions
    ]


def _message_components(event: NormalizedEvent) -> list[str]:
    # A template (``run %s failed``) has no variable parts left; a plain message gets them replaced.
    logentry = event.data.get("logentry") or {}
    return [f"message:{parameterize(logentry.get('message') or '')}"]


def default_components(event: NormalizedEvent) -> list[str]:
    return _stack_components(event) or _exception_components(event) or _message_components(event)


def _digest(components: list[str]) -> str:
    return hashlib.sha256("\n".join(components).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def grouping_hash(event: NormalizedEvent) -> str:
    if event.fingerprint:
        default: str | None = None
        parts = []
        for part in event.fingerprint:
            if part.strip() in _DEFAULT_MARKERS:
                default = default or _digest(default_components(event))
                parts.append(f"default:{default}")
            else:
                parts.append(f"fingerprint:{part}")
        return _digest(parts)
    return _digest(default_components(event))
