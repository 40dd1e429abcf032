"""From inbox rows to records: events (normalized, grouped, summarized), attachments, session and client
report counts. Pure functions, no database: a malformed item is counted and skipped, never raised.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from stackwatch.scrub import ScrubOptions, scrub_text
from stackwatch.server.digest.grouping import CURRENT, grouping_hash, is_explicit, mark_in_app
from stackwatch.server.digest.grouping.rules import EMPTY, ProjectRules
from stackwatch.server.digest.normalize import EventContext, NormalizedEvent, as_dict, normalize_event, parse_timestamp
from stackwatch.server.digest.summary import Summary, summarize
from stackwatch.server.digest.timestamps import MAX_FUTURE, MAX_PAST, read_timestamp
from stackwatch.server.ingest.envelope import EnvelopeError, parse_envelope
from stackwatch.server.storage.inbox import InboxRow
from stackwatch.server.storage.upsert import clean

__all__ = [
    "MAX_QUANTITY",
    "AttachmentRecord",
    "EventRecord",
    "Grouping",
    "ParsedBatch",
    "ProjectPolicy",
    "event_record",
    "hour_of",
    "parse_rows",
]

log = logging.getLogger("stackwatch.digest")

_SESSION_END_STATES = ("exited", "crashed", "abnormal", "errored")
# The most one count in a ``sessions`` aggregate or a ``client_report`` entry adds: Relay reads these counts as
# 32-bit unsigned integers, so no SDK sends more. A larger whole number is clamped to it; what is not a positive
# whole number (negative, fractional, a string, a boolean) is ignored. Either way the batch logs one warning, and
# the stored sums saturate at the 64-bit counter column's maximum (``digest.store``), so a count can never make a
# batch fail and be retried into quarantine.
MAX_QUANTITY = 2**32 - 1


def hour_of(timestamp: float) -> int:
    return int(timestamp // 3600 * 3600)


@dataclass(frozen=True, slots=True)
class Grouping:
    """How a project's events are grouped: the version, the version it is moving from (``None`` once the
    transition is over) and its rules."""

    version: int = CURRENT
    previous: int | None = None
    rules: ProjectRules = EMPTY


@dataclass(frozen=True, slots=True)
class ProjectPolicy:
    """What a project's settings decide about its events: IP collection, the optional redaction rules, the
    window of timestamps kept as sent (seconds back: its retention; ahead: the server's allowance for skew), and
    grouping."""

    collect_ips: bool = True
    scrub: ScrubOptions = field(default_factory=ScrubOptions)
    max_past: float = MAX_PAST
    max_future: float = MAX_FUTURE
    grouping: Grouping = field(default_factory=Grouping)


@dataclass(slots=True)
class EventRecord:
    event: NormalizedEvent
    grouping_hash: str
    grouping_version: int
    summary: Summary
    # The previous version's hash while the project moves between versions: the issue it finds takes the event
    # when ``grouping_hash`` finds none (see digest/store.py).
    previous_hash: str | None = None


@dataclass(slots=True)
class AttachmentRecord:
    project_id: int
    event_id: str
    filename: str
    content_type: str | None
    attachment_type: str
    data: bytes
    created_at: float
    inbox_id: int = 0  # the envelope it came in: a retried envelope brings the same attachments again


@dataclass(slots=True)
class ParsedBatch:
    events: list[EventRecord] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    # (project_id, hour, release, environment, status) → count
    sessions: Counter[tuple[int, int, str, str, str]] = field(default_factory=Counter)
    # (project_id, hour, reason, category) → count
    client_reports: Counter[tuple[int, int, str, str]] = field(default_factory=Counter)
    invalid_items: int = 0
    oversized_attachments: int = 0
    clamped_counts: int = 0  # session or client report counts above MAX_QUANTITY, counted as MAX_QUANTITY
    ignored_counts: int = 0  # session or client report counts that were not positive whole numbers


def _quantity(batch: ParsedBatch, value: Any) -> int:
    """What a count sent by a client adds: a whole number from 1 to :data:`MAX_QUANTITY`, else 0."""
    if value is None or value == 0:
        return 0  # absent, or nothing to count
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        batch.ignored_counts += 1
        return 0
    if value > MAX_QUANTITY:
        batch.clamped_counts += 1
        return MAX_QUANTITY
    return value


def _session_attrs(payload: dict[str, Any]) -> tuple[str, str]:
    attrs = as_dict(payload.get("attrs"))
    return clean(attrs.get("release") or "", 250) or "", clean(attrs.get("environment") or "", 64) or ""


def _add_session(batch: ParsedBatch, project_id: int, received_at: float, payload: dict[str, Any]) -> None:
    release, environment = _session_attrs(payload)
    hour = hour_of(parse_timestamp(payload.get("started"), received_at))
    if payload.get("init") is True:
        batch.sessions[(project_id, hour, release, environment, "started")] += 1
    status = payload.get("status")
    if status in _SESSION_END_STATES:
        batch.sessions[(project_id, hour, release, environment, str(status))] += 1


def _add_sessions(batch: ParsedBatch, project_id: int, received_at: float, payload: dict[str, Any]) -> None:
    release, environment = _session_attrs(payload)
    aggregates = payload.get("aggregates")
    for bucket in aggregates if isinstance(aggregates, list) else []:
        if not isinstance(bucket, dict):
            continue
        hour = hour_of(parse_timestamp(bucket.get("started"), received_at))
        for status in ("exited", "errored", "abnormal", "crashed"):
            count = _quantity(batch, bucket.get(status))
            if count:
                batch.sessions[(project_id, hour, release, environment, status)] += count
                batch.sessions[(project_id, hour, release, environment, "started")] += count


def _add_client_report(batch: ParsedBatch, project_id: int, received_at: float, payload: dict[str, Any]) -> None:
    hour = hour_of(parse_timestamp(payload.get("timestamp"), received_at))
    discarded = payload.get("discarded_events")
    for entry in discarded if isinstance(discarded, list) else []:
        if not isinstance(entry, dict):
            continue
        quantity = _quantity(batch, entry.get("quantity"))
        if quantity:
            reason = clean(entry.get("reason") or "unknown", 64) or "unknown"
            category = clean(entry.get("category") or "unknown", 64) or "unknown"
            batch.client_reports[(project_id, hour, reason, category)] += quantity


def event_record(payload: dict[str, Any], context: EventContext, grouping: Grouping) -> EventRecord:
    """Normalize, group and summarize one event.

    While the project moves between versions the previous version's hash is computed too, unless a project
    fingerprint rule decided the grouping: the older version knows no rules, and its hash would pull the event
    back into the issue the rule is there to split it from.
    """
    event = normalize_event(payload, context)
    primary = grouping_hash(event, grouping.version, grouping.rules)
    previous = None
    if grouping.previous is not None and not is_explicit(event, grouping.rules):
        previous = grouping_hash(event, grouping.previous, grouping.rules)
    mark_in_app(event, grouping.rules)
    return EventRecord(event, primary, grouping.version, summarize(event), previous if previous != primary else None)


def _scrub_attachment(payload: bytes, options: ScrubOptions) -> bytes:
    """Text attachments (logs, JSON) get the value rules; binary ones are kept as they are."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload
    if "\x00" in text:
        return payload
    scrubbed, remarks = scrub_text(text, options)
    return scrubbed.encode("utf-8") if remarks else payload


_COUNTERS = {"session": _add_session, "sessions": _add_sessions, "client_report": _add_client_report}


def parse_rows(
    rows: list[InboxRow],
    policies: dict[int, ProjectPolicy],
    max_attachment_bytes: int,
    identity_key: bytes = b"",
) -> ParsedBatch:
    batch = ParsedBatch()
    for row in rows:
        try:
            envelope = parse_envelope(row.body)
        except EnvelopeError:
            log.warning("inbox row %d is not a valid envelope; skipped", row.id)
            batch.invalid_items += 1
            continue
        header_id = envelope.headers.get("event_id")
        policy = policies.get(row.project_id) or ProjectPolicy()
        context = EventContext(
            project_id=row.project_id,
            received_at=row.received_at,
            client_ip=row.client_ip,
            collect_ips=policy.collect_ips,
            envelope_event_id=header_id if isinstance(header_id, str) else None,
            scrub=policy.scrub,
            identity_key=identity_key,
            max_past=policy.max_past,
            max_future=policy.max_future,
            sent_at=read_timestamp(envelope.headers.get("sent_at")),
        )
        for item in envelope.items:
            try:
                _parse_item(
                    batch, row, context, policy.grouping, item.type, item.headers, item.payload, max_attachment_bytes
                )
            except Exception:  # one bad item must not cost the rest of the batch
                log.exception("inbox row %d: %s item could not be digested; skipped", row.id, item.type)
                batch.invalid_items += 1
    if batch.clamped_counts or batch.ignored_counts:
        log.warning(
            "session and client report counts: %d above %d counted as %d, %d not positive whole numbers ignored",
            batch.clamped_counts,
            MAX_QUANTITY,
            MAX_QUANTITY,
            batch.ignored_counts,
        )
    return batch


def _parse_item(
    batch: ParsedBatch,
    row: InboxRow,
    context: EventContext,
    grouping: Grouping,
    kind: str,
    headers: dict[str, Any],
    payload: bytes,
    max_attachment_bytes: int,
) -> None:
    if kind == "attachment":
        if len(payload) > max_attachment_bytes:
            batch.oversized_attachments += 1
            return
        event_id = context.envelope_event_id or ""
        batch.attachments.append(
            AttachmentRecord(
                project_id=row.project_id,
                event_id=clean(event_id.replace("-", "").lower(), 32) or "",
                filename=clean(scrub_text(str(headers.get("filename") or "attachment"), context.scrub)[0], 500)
                or "attachment",
                content_type=clean(headers.get("content_type"), 200),
                attachment_type=clean(headers.get("attachment_type") or "event.attachment", 64) or "",
                data=_scrub_attachment(payload, context.scrub),
                created_at=row.received_at,
                inbox_id=row.id,
            )
        )
        return
    if kind not in ("event", *_COUNTERS):
        return  # accepted and dropped by design (transactions, check-ins, …) or unknown
    data = orjson.loads(payload)
    if not isinstance(data, dict):
        batch.invalid_items += 1
        return
    if kind == "event":
        batch.events.append(event_record(data, context, grouping))
    else:
        _COUNTERS[kind](batch, row.project_id, row.received_at, data)
