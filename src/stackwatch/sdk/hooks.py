"""The sentry-sdk callbacks ``stackwatch.sdk.init`` installs: redaction, workflow conventions, duplicate drops.

The promise of every hook here: it never raises into sentry-sdk.  When something fails inside, the offending part
is dropped, never sent unscrubbed (fail closed), and the failure is logged on the ``stackwatch.sdk`` logger (which
the logging integration is told to ignore, so the log line itself never becomes an event).

``before_send`` (errors and messages), after the caller's own ``before_send``:

1. drops an event for an exception object already reported (e.g. by ``workflow_scope(capture_errors=True)`` or
   the asyncio integration, then again by ``logger.exception`` or the loop's exception handler: in different
   contexts, which sentry-sdk's own dedupe does not see across);
2. adds the workflow context an exception escaped a ``workflow_scope`` with (see ``scope.py``), when the event
   is captured outside that scope;
3. marks uncaught exceptions (``sys.excepthook``) as level ``fatal``, and exceptions the asyncio loop reports
   ("Task exception was never retrieved") as unhandled;
4. removes ``request.data``, ``request.cookies`` and ``request.headers`` (unless ``keep_request_details``),
   recording ``!config`` in ``_meta`` the way sentry-sdk does for bodies it does not send;
5. filters logging arguments that follow a secret-looking word in the template (``"token %s"``,
   ``"password=%s"``) in ``logentry.params`` and ``logentry.formatted``;
6. runs ``stackwatch.scrub.scrub_event`` over the whole event (messages, exceptions, frame variables,
   breadcrumbs, request, tags, contexts, extra, user), keeping and extending ``_meta``;
7. makes sure the ``component`` tag is set.

``before_send_transaction`` does 4, 6 and 7; ``before_breadcrumb`` does 5 and 6 on each breadcrumb (so they are
clean in memory too); ``before_send_log`` and ``before_send_metric`` scrub bodies and attributes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from stackwatch.scrub import FILTERED, ScrubOptions, key_rule, scrub_event
from stackwatch.sdk.scope import TAG_KEYS, workflow_of_exception

__all__ = ["REQUEST_DETAILS_RULE", "SCRUB_ERROR_RULE", "Hooks"]

_log = logging.getLogger("stackwatch.sdk")

# ``_meta`` rule names for what the hooks themselves remove.  ``!config`` is sentry-sdk's own name for data left
# out by configuration (e.g. request bodies over ``max_request_body_size``).
REQUEST_DETAILS_RULE = "!config"
SCRUB_ERROR_RULE = "!stackwatch.scrub_error"

_REQUEST_DETAILS = ("data", "cookies", "headers")
# One %-style placeholder (``%s``, ``%r``, ``%05.2f``, ``%(name)s``) or an escaped ``%%``.
_PLACEHOLDER = re.compile(r"%(?:%|(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa])")
# The word right before a placeholder, allowing ``word=``, ``word: ``, ``"word": "`` and ``word `` spellings.
# Letters of any script: key rules fold look-alikes (a Cyrillic "а" in "pаssword") before they match.
_WORD_BEFORE = re.compile(r"([^\W\d_][\w.-]*)[\"']?\s*[:=]?\s*[\"']?$")
_WORD_WINDOW = 64  # how far back from a placeholder to look for that word
_SEPARATORS_ONLY = re.compile(r"[\s/:,;|=\"'()\[\]-]*")
_ASYNCIO_LOGGER = "asyncio"
_CRUMB_META = "_stackwatch_meta"
_PROTOCOL_FIELDS = ("event_id", "type", "timestamp", "start_timestamp", "platform", "level")

T = TypeVar("T")
Event = dict[str, Any]
Callback = Callable[[Any, Any], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """The callbacks for one ``init``; ``user_*`` are the caller's own, run first."""

    component: str
    scrub_options: ScrubOptions
    keep_request_details: bool = False
    user_before_send: Callback | None = None
    user_before_send_transaction: Callback | None = None
    user_before_breadcrumb: Callback | None = None
    user_before_send_log: Callback | None = None
    user_before_send_metric: Callback | None = None

    def before_send(self, event: Any, hint: Any) -> Any:
        event = _run_user(self.user_before_send, event, hint, "before_send")
        if event is None:
            return None
        return _guarded(lambda: self._event(event, hint, transaction=False), "before_send")

    def before_send_transaction(self, event: Any, hint: Any) -> Any:
        event = _run_user(self.user_before_send_transaction, event, hint, "before_send_transaction")
        if event is None:
            return None
        return _guarded(lambda: self._event(event, hint, transaction=True), "before_send_transaction")

    def before_breadcrumb(self, crumb: Any, hint: Any) -> Any:
        crumb = _run_user(self.user_before_breadcrumb, crumb, hint, "before_breadcrumb")
        if crumb is None:
            return None
        return _guarded(lambda: self._breadcrumb(crumb, hint), "before_breadcrumb")

    def before_send_log(self, log: Any, hint: Any) -> Any:
        log = _run_user(self.user_before_send_log, log, hint, "before_send_log")
        if log is None:
            return None
        return _guarded(lambda: self._telemetry(log, ("body", "attributes")), "before_send_log")

    def before_send_metric(self, metric: Any, hint: Any) -> Any:
        metric = _run_user(self.user_before_send_metric, metric, hint, "before_send_metric")
        if metric is None:
            return None
        return _guarded(lambda: self._telemetry(metric, ("attributes",)), "before_send_metric")

    # -- the work --------------------------------------------------------------------------------------------------

    def _event(self, event: Event, hint: Any, *, transaction: bool) -> Event | None:
        exc = _hint_exception(hint)
        if not transaction:
            if exc is not None and _already_reported(exc):
                return None
            if exc is not None:
                _add_escaped_workflow(event, exc)
            _mark_uncaught(event)
            _frozen_frames_not_in_app(event)
            _filter_log_params(event)
        if not self.keep_request_details:
            _drop_request_details(event)
        _lift_breadcrumb_meta(event)
        scrubbed = scrub_safely(event, self.scrub_options)
        for key in _PROTOCOL_FIELDS:
            # sentry-sdk needs these after ``before_send`` (it reads ``event_id`` and ``type`` unconditionally);
            # they are generated by sentry-sdk, never application data.
            if key not in scrubbed and isinstance(event.get(key), str):
                scrubbed[key] = event[key]
        tags = scrubbed.setdefault("tags", {})
        if isinstance(tags, dict):
            tags.setdefault("component", self.component)
        if exc is not None:
            _mark_reported(exc)
        return scrubbed

    def _breadcrumb(self, crumb: Mapping[str, Any], hint: Any) -> dict[str, Any]:
        crumb = dict(crumb)
        record = hint.get("log_record") if isinstance(hint, Mapping) else None
        if isinstance(record, logging.LogRecord):
            _filter_record_message(crumb, record)
        scrubbed = scrub_safely(crumb, self.scrub_options)
        meta = scrubbed.pop("_meta", None)
        if meta:
            # Breadcrumbs have no ``_meta`` of their own in the protocol.  The remarks ride along as one JSON string
            # (a nested dict would be cut by sentry-sdk's depth limit) and ``before_send`` moves them to
            # ``_meta.breadcrumbs.values.<n>`` of the event.
            scrubbed[_CRUMB_META] = json.dumps(meta)
        return scrubbed

    def _telemetry(self, item: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
        out = dict(item)
        part = scrub_safely({k: item[k] for k in fields if k in item}, self.scrub_options)
        part.pop("_meta", None)  # logs and metrics have no ``_meta`` in the protocol
        for key in fields:
            if key in part:
                out[key] = part[key]
            else:
                out.pop(key, None)
        return out


def scrub_safely(event: Mapping[str, Any], options: ScrubOptions) -> dict[str, Any]:
    """``scrub_event``, failing closed: if the engine fails, each top-level field is scrubbed on its own and a
    field that still fails is dropped (recorded in ``_meta`` as ``!stackwatch.scrub_error``)."""
    try:
        return scrub_event(event, options)
    except Exception:
        _log.warning("scrubbing failed; retrying field by field", exc_info=True)
    out: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key, value in event.items():
        if key == "_meta":
            continue
        try:
            part = scrub_event({key: value}, options)
        except Exception:
            _log.warning("dropped field %r, which could not be scrubbed", key, exc_info=True)
            meta[key] = {"": {"rem": [[SCRUB_ERROR_RULE, "x"]]}}
            continue
        out[key] = part[key]
        meta.update(part.get("_meta") or {})
    if meta:
        out["_meta"] = meta
    return out


# Set on an exception object once an event for it was sent.  An attribute rather than a set of weak references:
# built-in exception types do not support weak references, and a strong set would keep tracebacks (and every
# frame's variables) alive.
_REPORTED_ATTRIBUTE = "__stackwatch_reported__"


def _already_reported(exc: BaseException) -> bool:
    return getattr(exc, _REPORTED_ATTRIBUTE, False) is True


def _mark_reported(exc: BaseException) -> None:
    # An exception type that refuses attributes is simply not deduplicated.
    with contextlib.suppress(Exception):
        setattr(exc, _REPORTED_ATTRIBUTE, True)


def _run_user(callback: Callback | None, item: T, hint: Any, name: str) -> T | None:
    if callback is None:
        return item
    try:
        result: T | None = callback(item, hint)
        return result
    except Exception:
        # sentry-sdk drops the event when its before_send raises; do the same, without raising into it.
        _log.warning("the application's %s raised; the item is dropped", name, exc_info=True)
        return None


def _guarded(work: Callable[[], T], name: str) -> T | None:
    try:
        return work()
    except Exception:
        _log.error("%s failed; the item is dropped rather than sent unscrubbed", name, exc_info=True)
        return None


def _hint_exception(hint: Any) -> BaseException | None:
    exc_info = hint.get("exc_info") if isinstance(hint, Mapping) else None
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    return None


def _exception_values(event: Event) -> list[dict[str, Any]]:
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else None
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _add_escaped_workflow(event: Event, exc: BaseException) -> None:
    workflow = workflow_of_exception(exc)
    if not workflow:
        return
    tags = event.get("tags")
    if not isinstance(tags, dict):
        tags = event["tags"] = {}
    for key in TAG_KEYS:
        tags.pop(key, None)  # the scope the exception escaped from is more specific than the one it is reported in
        if key in workflow:
            tags[key] = str(workflow[key])
    contexts = event.get("contexts")
    if not isinstance(contexts, dict):
        contexts = event["contexts"] = {}
    contexts["workflow"] = workflow


def _mark_uncaught(event: Event) -> None:
    values = _exception_values(event)
    mechanisms = [v.get("mechanism") for v in values]
    if any(isinstance(m, dict) and m.get("type") == "excepthook" for m in mechanisms):
        event["level"] = "fatal"
    elif event.get("logger") == _ASYNCIO_LOGGER and values:
        # The loop's exception handler logs exceptions nobody retrieved (a task or callback that died): not
        # handled by the application, whatever the logging integration's default says.
        values[-1]["mechanism"] = {"type": "asyncio", "handled": False}


def _frozen_frames_not_in_app(event: Event) -> None:
    """sentry-sdk counts the interpreter's frozen modules (``<frozen runpy>`` under ``python -m``) as in-app, since
    their path is outside site-packages; they never are, and as in-app frames they would become the culprit."""
    for value in _exception_values(event):
        stacktrace = value.get("stacktrace")
        frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
        for frame in frames if isinstance(frames, list) else ():
            path = frame.get("abs_path") or frame.get("filename") if isinstance(frame, dict) else None
            if isinstance(path, str) and "<frozen " in path:
                frame["in_app"] = False


def _drop_request_details(event: Event) -> None:
    request = event.get("request")
    if not isinstance(request, dict):
        return
    removed = [key for key in _REQUEST_DETAILS if request.pop(key, None) is not None]
    if removed:
        meta = _meta_node(event, ("request",))
        for key in removed:
            meta[key] = {"": {"rem": [[REQUEST_DETAILS_RULE, "x"]]}}


def _lift_breadcrumb_meta(event: Event) -> None:
    breadcrumbs = event.get("breadcrumbs")
    values = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else None
    if not isinstance(values, list):
        return
    for index, crumb in enumerate(values):
        stashed = crumb.pop(_CRUMB_META, None) if isinstance(crumb, dict) else None
        if not isinstance(stashed, str):
            continue
        try:
            crumb_meta = json.loads(stashed)
        except ValueError:
            continue
        if isinstance(crumb_meta, dict):
            merge_meta(_meta_node(event, ("breadcrumbs", "values", str(index))), crumb_meta)


def merge_meta(target: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Merge ``_meta`` trees: remarks on the same field are concatenated, the first ``len`` wins."""
    stack: list[tuple[dict[str, Any], Mapping[str, Any]]] = [(target, new)]
    while stack:
        dst, src = stack.pop()
        for key, value in src.items():
            existing = dst.get(key)
            if key == "" and isinstance(existing, dict) and isinstance(value, Mapping):
                rem = existing.get("rem")
                existing["rem"] = (rem if isinstance(rem, list) else []) + list(value.get("rem") or [])
                if "len" in value:
                    existing.setdefault("len", value["len"])
            elif isinstance(existing, dict) and isinstance(value, Mapping):
                stack.append((existing, value))
            else:
                dst[key] = value


def _meta_node(event: Event, path: tuple[str, ...]) -> dict[str, Any]:
    node = event.get("_meta")
    if not isinstance(node, dict):
        node = event["_meta"] = {}
    for segment in path:
        child = node.get(segment)
        if not isinstance(child, dict):
            child = node[segment] = {}
        node = child
    return node


# -- logging arguments ---------------------------------------------------------------------------------------------


def secret_params(template: str) -> dict[int, str]:
    """Positions of the ``%`` arguments of ``template`` that follow a secret-looking word, with the key rule name.

    ``"token %s for %s"`` → ``{0: "token"}``; ``"password=%r"`` → ``{0: "password"}``.  An argument that follows
    a filtered one with only separators between is filtered too: ``"credentials %s %s"`` and ``"creds %s:%s"``
    are a key id and its secret, ``"token %s/%s"`` two halves of one.
    """
    found: dict[int, str] = {}
    index = 0
    previous_end = -1
    for match in _PLACEHOLDER.finditer(template):
        if match.group() == "%%":
            continue
        word = _WORD_BEFORE.search(template, max(0, match.start() - _WORD_WINDOW), match.start())
        rule = key_rule(word.group(1)) if word is not None else None
        if rule is None and index - 1 in found and _SEPARATORS_ONLY.fullmatch(template, previous_end, match.start()):
            rule = found[index - 1]
        if rule is not None:
            found[index] = rule
        index += 1
        previous_end = match.end()
    return found


def _filter_log_params(event: Event) -> None:
    logentry = event.get("logentry")
    if not isinstance(logentry, dict):
        return
    template, params = logentry.get("message"), logentry.get("params")
    if not isinstance(template, str) or not isinstance(params, list) or not params:
        return
    secret = {i: rule for i, rule in secret_params(template).items() if i < len(params)}
    if not secret:
        return
    meta = _meta_node(event, ("logentry",))
    original = list(params)
    for i, rule in secret.items():
        params[i] = FILTERED
        meta.setdefault("params", {})[str(i)] = {"": {"rem": [[rule, "x"]]}}
    formatted = _render(template, original, secret)
    if formatted is None:
        logentry.pop("formatted", None)
        meta["formatted"] = {"": {"rem": [[SCRUB_ERROR_RULE, "x"]]}}
    elif isinstance(logentry.get("formatted"), str):
        old = logentry["formatted"]
        logentry["formatted"] = formatted
        if formatted != old:
            meta["formatted"] = {"": {"rem": [[rule, "s"] for rule in secret.values()], "len": len(old)}}


def _filter_record_message(crumb: dict[str, Any], record: logging.LogRecord) -> None:
    if not isinstance(record.msg, str) or not isinstance(record.args, tuple) or not record.args:
        return
    secret = secret_params(record.msg)
    if not secret:
        return
    old = crumb.get("message")
    crumb["message"] = _render(record.msg, list(record.args), secret) or record.msg
    remark = {"rem": [[rule, "s"] for rule in secret.values()], "len": len(old) if isinstance(old, str) else 0}
    crumb["_meta"] = {"message": {"": remark}}  # picked up and extended by ``scrub_event``


def _render(template: str, params: list[Any], secret: Mapping[int, str]) -> str | None:
    """``template % params`` with the secret arguments (and their placeholders) replaced by ``[Filtered]``."""
    pieces: list[str] = []
    args: list[Any] = []
    cursor = index = 0
    for match in _PLACEHOLDER.finditer(template):
        spec = match.group()
        if spec == "%%":
            continue
        pieces.append(template[cursor : match.start()])
        pieces.append("%s" if index in secret else spec)
        args.append(FILTERED if index in secret else (params[index] if index < len(params) else None))
        cursor = match.end()
        index += 1
    pieces.append(template[cursor:])
    try:
        return "".join(pieces) % tuple(args)
    except Exception:
        return None
