"""An event's message in one shape, ``logentry {"message": template, "params": …, "formatted": …}``, after
redaction has run over the whole event.

SDKs put the message in four places: ``logentry`` (the interface), ``sentry.interfaces.Message`` (its name in
raven's days), ``message`` as an object (older SDKs, Cocoa) and ``message`` as a plain string. The first one
present wins; the others are dropped from the stored event (``normalize_event``), and the redaction remarks of
the one read move along with it to ``_meta.logentry``, where the event page looks for them.

``message`` stays the template, which grouping reads (every order's failure is one issue); ``formatted`` is the
SDK's when it sent one, else the template filled in with the params (digest/messages.py) for the title.

Redaction already ran over the template and each param on its own, but a message's secret can be spread over
them: ``"password=%s", ["hunter2"]`` (the template is redacted, the param is a plain word) or ``"%s=%s",
["password", "hunter2"]`` (only the filled-in text shows it). So what is filled in is redacted again, and as soon
as redaction found anything in the message — template or text — every param it left alone is redacted whole:
which of them made the secret cannot be told. A redacted template is never filled in: its placeholders no longer
line up with the params, and ``"password=%s user=%s"`` would put the password where the user was.
"""

from __future__ import annotations

from typing import Any

from stackwatch.scrub import FILTERED, ScrubOptions, scrub_text
from stackwatch.server.digest.messages import MAX_MESSAGE, format_message

__all__ = ["MESSAGE_KEYS", "normalize_logentry"]

# Where an event's message may be, in order of precedence; ``message`` as a plain string comes last.
MESSAGE_KEYS = ("logentry", "sentry.interfaces.Message", "message")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return text[:MAX_MESSAGE] if text else None


def _source(data: dict[str, Any]) -> tuple[str, Any]:
    """Which key holds the event's message, and what it holds."""
    for key in MESSAGE_KEYS:
        if isinstance(data.get(key), dict):
            return key, data[key]
    return "message", data.get("message")


def normalize_logentry(data: dict[str, Any], scrub: ScrubOptions) -> dict[str, Any] | None:
    """The (redacted) event's message in the one shape, or ``None`` when it has none; updates ``data["_meta"]``."""
    source, entry = _source(data)
    if not isinstance(entry, dict):
        text = _text(entry)  # its remarks stay at ``_meta.message``, where the event page looks too
        return {"message": text} if text else None
    template = _text(entry.get("message")) or _text(entry.get("formatted"))
    if template is None:
        return None
    if source != "logentry":
        _move_meta(data, [source], ["logentry"])
    normalized: dict[str, Any] = {"message": template}
    params = entry.get("params")
    if params is not None:
        normalized["params"] = params
    formatted = _text(entry.get("formatted"))
    if formatted is None and not _redacted(data, "message"):
        formatted = _filled_in(data, format_message(template, params), scrub)
    if formatted and formatted != template:
        normalized["formatted"] = formatted
    rule = _redacted(data, "message") or _redacted(data, "formatted")
    if rule and isinstance(params, (list, dict)):
        normalized["params"] = _filtered_params(data, params, rule)
    return normalized


def _filled_in(data: dict[str, Any], formatted: str | None, scrub: ScrubOptions) -> str | None:
    if formatted is None:
        return None
    scrubbed, remarks = scrub_text(formatted, scrub)
    if remarks:
        meta = _meta_node(data, ["logentry", "formatted"])
        meta[""] = {"rem": [remark.to_meta() for remark in remarks], "len": len(formatted)}
    return scrubbed


def _redacted(data: dict[str, Any], part: str) -> str | None:
    """The rule that removed something from ``logentry.<part>``, if one did."""
    meta = data.get("_meta")
    for key in ("logentry", part, ""):
        meta = meta.get(key) if isinstance(meta, dict) else None
    remarks = meta.get("rem") if isinstance(meta, dict) else None
    if isinstance(remarks, list) and remarks and isinstance(remarks[0], list) and remarks[0]:
        return str(remarks[0][0])
    return None


def _filtered_params(data: dict[str, Any], params: list[Any] | dict[str, Any], rule: str) -> Any:
    """The params with each one redaction left alone replaced by ``[Filtered]``, with a remark naming ``rule``."""
    keys = [str(i) for i in range(len(params))] if isinstance(params, list) else [str(k) for k in params]
    values = params if isinstance(params, list) else list(params.values())
    meta = _meta_node(data, ["logentry", "params"])
    kept: list[Any] = []
    for key, value in zip(keys, values, strict=True):
        if isinstance(meta.get(key), dict):
            kept.append(value)  # redacted on its own already: its remark says by which rule
            continue
        note: dict[str, Any] = {"rem": [[rule, "x"]]}
        if isinstance(value, str):
            note["len"] = len(value)
        meta[key] = {"": note}
        kept.append(FILTERED)
    if not meta:
        del data["_meta"]["logentry"]["params"]
    return kept if isinstance(params, list) else dict(zip(params, kept, strict=True))


def _meta_node(data: dict[str, Any], path: list[str]) -> dict[str, Any]:
    """The ``_meta`` node at ``path``, made where missing."""
    node = data.get("_meta")
    if not isinstance(node, dict):
        node = data["_meta"] = {}
    for key in path:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    return node


def _move_meta(data: dict[str, Any], source: list[str], target: list[str]) -> None:
    """Move the redaction remarks of a value whose place normalizing changes (``message`` → ``logentry``)."""
    node: Any = data.get("_meta")
    for key in source[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get(source[-1]), dict):
        return
    moved = node.pop(source[-1])
    parent = _meta_node(data, target[:-1])
    if not isinstance(parent.get(target[-1]), dict):
        parent[target[-1]] = moved
