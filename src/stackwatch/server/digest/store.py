"""Writing one parsed batch: issues, events, hourly counts, tag facets, impact, attachments, counters.

All of it happens in the caller's transaction, in a fixed order of statements (one per table, many rows each),
so a batch of hundreds of events costs about a dozen round trips. Counters are updated with SQL arithmetic
(``count = count + n``), never read-modify-write in Python, so several workers on PostgreSQL stay correct.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import BigInteger, Connection, Update, bindparam, case, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY

from stackwatch.server.digest.dictionaries import PayloadCompressor
from stackwatch.server.digest.items import AttachmentRecord, EventRecord, ParsedBatch, hour_of
from stackwatch.server.digest.normalize import NormalizedEvent
from stackwatch.server.storage import activity, snooze
from stackwatch.server.storage.schema import (
    IMPACT_FACETS,
    attachments,
    client_report_counts,
    events,
    grouping_hashes,
    issue_hourly,
    issue_impact,
    issue_minutes,
    issue_tags,
    issues,
    project_hourly,
    session_counts,
)
from stackwatch.server.storage.upsert import clean, insert_ignore, upsert_add

__all__ = ["BatchResult", "write_batch"]

# The largest value of the BIGINT counter columns (session_counts, client_report_counts) on both backends.
MAX_COUNT = 2**63 - 1
_ISSUE_KEY = ["project_id", "grouping_hash"]
IMPACT_KINDS = {"user": "user_count", "workflow": "workflow_count", "run": "run_count", "tenant": "tenant_count"}


@dataclass(slots=True)
class BatchResult:
    events: int = 0
    duplicates: int = 0
    new_issues: list[int] = field(default_factory=list)
    regressions: list[int] = field(default_factory=list)
    # Snoozed issues this batch woke: their condition was met (storage/snooze.py); alert rules call it escalating.
    escalations: list[int] = field(default_factory=list)
    issue_events: Counter[int] = field(default_factory=Counter)
    # (issue id, event) for every event stored by this batch, in timestamp order: what alert rules look at.
    stored: list[tuple[int, NormalizedEvent]] = field(default_factory=list)
    notifications: int = 0  # written to the alert outbox with this batch


# One statement takes the locks of a whole batch; PostgreSQL evaluates a volatile select list after ORDER BY.
_LOCK_EVENT_IDS = text("SELECT pg_advisory_xact_lock(key) FROM unnest(:keys) AS key ORDER BY key").bindparams(
    bindparam("keys", type_=ARRAY(BigInteger))
)


def _event_lock_key(project_id: int, event_id: str) -> int:
    """A signed 64-bit advisory lock key for one (project, event id); a collision only makes two events wait."""
    digest = hashlib.blake2b(f"{project_id}:{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_event_ids(connection: Connection, records: list[EventRecord]) -> None:
    """PostgreSQL: hold, until commit, a lock per (project, event id) of the batch.

    The events table is partitioned there, and a partitioned table cannot have a unique constraint without the
    partition key (``received_at``, which differs between two sends of one event). Two workers digesting the same
    event id at once (a retried send, in two inbox rows each taken by one) would both find it missing and both
    store it. With the lock the second waits for the first to commit, and its SELECT then sees the event.
    The locks are taken before any other write of the batch and in sorted order, so two batches never wait
    for each other in a cycle. SQLite needs none of this: a digest transaction holds its write lock throughout.
    """
    if connection.dialect.name != "postgresql" or not records:
        return
    keys = sorted({_event_lock_key(r.event.project_id, r.event.event_id) for r in records})
    connection.execute(_LOCK_EVENT_IDS, {"keys": keys})


def _fresh_events(connection: Connection, records: list[EventRecord]) -> list[EventRecord]:
    """Drop events already stored (a retried send, or a batch re-read after a crash) and repeats in the batch."""
    unique: dict[tuple[int, str], EventRecord] = {}
    for record in records:
        unique.setdefault((record.event.project_id, record.event.event_id), record)
    if not unique:
        return []
    query = select(events.c.project_id, events.c.event_id).where(
        events.c.event_id.in_({event_id for _, event_id in unique})
    )
    for project_id, event_id in connection.execute(query):
        unique.pop((project_id, event_id), None)
    return sorted(unique.values(), key=lambda record: record.event.timestamp)


def _fresh_attachments(connection: Connection, records: list[AttachmentRecord]) -> list[AttachmentRecord]:
    """Drop attachments already stored: a retried envelope brings its attachments again with its event.

    An attachment is known by its event, file name, size and its place among the envelope's attachments of the same
    name and size, so two equal-looking files of one event (two ``log.txt`` of 12 bytes) are both kept, while the
    same envelope sent twice — in one batch, or after a crash between the digest's commit and the inbox clean-up —
    stores them once.
    """
    seen: Counter[tuple[int, int, str, str, int]] = Counter()
    unique: dict[tuple[int, str, str, int, int], AttachmentRecord] = {}
    for record in records:
        base = (record.project_id, record.event_id, record.filename, len(record.data))
        place = seen[(record.inbox_id, *base)]
        seen[(record.inbox_id, *base)] += 1
        unique.setdefault((*base, place), record)
    if not unique:
        return []
    query = select(attachments.c.project_id, attachments.c.event_id, attachments.c.filename, attachments.c.size).where(
        attachments.c.event_id.in_({key[1] for key in unique})
    )
    stored = Counter(tuple(row) for row in connection.execute(query))
    return [record for key, record in unique.items() if key[4] >= stored[key[:4]]]


@dataclass(frozen=True, slots=True)
class _Found:
    id: int
    status: str


def _hash_keys(records: list[EventRecord]) -> set[tuple[int, str]]:
    keys = {(r.event.project_id, r.grouping_hash) for r in records}
    keys.update((r.event.project_id, r.previous_hash) for r in records if r.previous_hash)
    return keys


def _known_hashes(connection: Connection, keys: set[tuple[int, str]]) -> dict[tuple[int, str], _Found]:
    """The issues that (project, hash) pairs belong to (``schema.grouping_hashes``)."""
    if not keys:
        return {}
    query = (
        select(grouping_hashes.c.project_id, grouping_hashes.c.hash, issues.c.id, issues.c.status)
        .join(issues, issues.c.id == grouping_hashes.c.issue_id)
        .where(grouping_hashes.c.project_id.in_({p for p, _ in keys}), grouping_hashes.c.hash.in_({h for _, h in keys}))
    )
    found = {(row.project_id, row.hash): _Found(row.id, row.status) for row in connection.execute(query)}
    return {key: value for key, value in found.items() if key in keys}


def _issues_of(connection: Connection, records: list[EventRecord]) -> tuple[list[_Found], list[int]]:
    """The issue of each record, and the ids of the issues created for them.

    While a project moves between grouping versions a record has the previous version's hash too, and the issue
    that hash finds takes the event first: every issue keeps the events it had, whatever the new version would
    merge. Else the issue the record's own hash finds, else a new issue created by its hash. A hash that is new
    is added to the issue its first record went to, so later events find that issue by it (after the transition
    too). Issues are created with ``insert_ignore`` on their own hash and hashes with ``insert_ignore`` on
    (project, hash): when another worker created the same one first, its row is read back and wins, and an issue
    of ours that lost its hash to another made at the same moment has no events and is deleted again.
    """
    found = _known_hashes(connection, _hash_keys(records))

    def known(record: EventRecord) -> _Found | None:
        project_id = record.event.project_id
        previous = found.get((project_id, record.previous_hash)) if record.previous_hash else None
        return previous or found.get((project_id, record.grouping_hash))

    first: dict[tuple[int, str], EventRecord] = {}
    for record in records:
        first.setdefault((record.event.project_id, record.grouping_hash), record)
    new_hashes = {key: record for key, record in first.items() if key not in found}
    missing = [record for record in new_hashes.values() if known(record) is None]
    created = {
        row.id for row in insert_ignore(connection, issues, [_new_issue(r) for r in missing], _ISSUE_KEY, ["id"])
    }
    if new_hashes:
        own = {
            (row.project_id, row.grouping_hash): _Found(row.id, row.status)
            for row in connection.execute(
                select(issues.c.id, issues.c.project_id, issues.c.grouping_hash, issues.c.status).where(
                    issues.c.project_id.in_({r.event.project_id for r in missing}),
                    issues.c.grouping_hash.in_({r.grouping_hash for r in missing}),
                )
            )
        }
        claims = {key: known(record) or own[key] for key, record in new_hashes.items()}
        insert_ignore(
            connection,
            grouping_hashes,
            [
                {
                    "project_id": project_id,
                    "hash": hash_,
                    "issue_id": claims[(project_id, hash_)].id,
                    "version": new_hashes[(project_id, hash_)].grouping_version,
                    "first_seen": new_hashes[(project_id, hash_)].event.received_at,
                }
                for project_id, hash_ in sorted(claims)  # a fixed order of index locks across workers
            ],
            ["project_id", "hash"],
            ["hash"],
        )
        found.update(_known_hashes(connection, set(claims)))
        lost = created - {found[key].id for key in claims}
        if lost:
            connection.execute(delete(issues).where(issues.c.id.in_(lost)))
            created -= lost
    return [_issue(known(record)) for record in records], sorted(created)


def _issue(found: _Found | None) -> _Found:
    assert found is not None, "every record's own hash is known once its issues are made"
    return found


def _new_issue(record: EventRecord) -> dict[str, Any]:
    event, summary = record.event, record.summary
    return {
        "project_id": event.project_id,
        "grouping_hash": record.grouping_hash,
        "grouping_version": record.grouping_version,
        "title": clean(summary.title, 500),
        "culprit": clean(summary.culprit, 500),
        "type": clean(summary.type, 200),
        "value": clean(summary.value, 10_000),
        "level": event.level,
        "status": "unresolved",
        "platform": clean(event.platform, 64),
        "unhandled": False,
        "first_seen": event.timestamp,
        "last_seen": event.timestamp,
        "event_count": 0,
        "first_release": clean(event.release, 250),
        "last_release": None,
        "user_count": 0,
        "workflow_count": 0,
        "run_count": 0,
        "tenant_count": 0,
    }


def _impact(connection: Connection, records: list[tuple[int, EventRecord]]) -> Counter[tuple[int, str]]:
    """Count the events of each distinct user, workflow, run and tenant seen, with when it was last seen; count
    the values new to each issue.

    A value is new when its row's count is this batch's alone: a stored row has counted at least one event before.
    """
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}
    for issue_id, record in records:
        event, workflow = record.event, record.event.workflow
        for kind, value in (
            ("user", event.user_key),
            ("workflow", workflow["workflow_id"]),
            ("run", workflow["run_id"]),
            ("tenant", workflow["tenant"]),
        ):
            text = clean(value, 320)
            if text:
                row = rows.setdefault(
                    (issue_id, kind, text),
                    {"issue_id": issue_id, "kind": kind, "value": text, "count": 0, "last_seen": 0.0},
                )
                row["count"] += 1
                row["last_seen"] = max(row["last_seen"], event.received_at)
    ordered = [rows[key] for key in sorted(rows)]  # a fixed order of row locks across concurrent workers
    written = upsert_add(
        connection,
        issue_impact,
        ordered,
        ["issue_id", "kind", "value"],
        ["count"],
        ["last_seen"],
        returning=["issue_id", "kind", "value", "count"],
    )
    return Counter(
        (row.issue_id, row.kind) for row in written if row.count == rows[(row.issue_id, row.kind, row.value)]["count"]
    )


def _issue_update() -> Update:
    """The one statement that adds a batch's events to an issue (executed with one parameter set per issue)."""
    resolved = issues.c.status == "resolved"
    return (
        update(issues)
        .where(issues.c.id == bindparam("b_id"))
        .values(
            event_count=issues.c.event_count + bindparam("b_n"),
            first_seen=case((issues.c.first_seen > bindparam("b_lo"), bindparam("b_lo")), else_=issues.c.first_seen),
            last_seen=case((issues.c.last_seen < bindparam("b_hi"), bindparam("b_hi")), else_=issues.c.last_seen),
            level=bindparam("b_level"),
            title=bindparam("b_title"),
            culprit=bindparam("b_culprit"),
            value=bindparam("b_value"),
            last_release=case((bindparam("b_release").is_(None), issues.c.last_release), else_=bindparam("b_release")),
            first_release=case(
                (issues.c.first_release.is_(None), bindparam("b_release")), else_=issues.c.first_release
            ),
            unhandled=issues.c.unhandled | bindparam("b_unhandled"),
            status=case((resolved, "unresolved"), else_=issues.c.status),
            regressed_at=case((resolved, bindparam("b_now")), else_=issues.c.regressed_at),
            resolved_at=case((resolved, None), else_=issues.c.resolved_at),
            stored_events=issues.c.stored_events + bindparam("b_n"),
            stored_bytes=issues.c.stored_bytes + bindparam("b_bytes"),
            **{column: issues.c[column] + bindparam(f"b_{column}") for column in IMPACT_KINDS.values()},
        )
    )


# Built once: constructing it (and its cache key) for every batch cost more than executing it for a few issues.
_UPDATE_ISSUES = _issue_update()


def _update_issues(
    connection: Connection,
    records: list[tuple[int, EventRecord]],
    new_impact: Counter[tuple[int, str]],
    payload_bytes: Counter[int],
) -> None:
    latest: dict[int, EventRecord] = {}
    stats: dict[int, dict[str, Any]] = {}
    for issue_id, record in records:  # records are in timestamp order: the last one per issue is the latest
        event = record.event
        latest[issue_id] = record
        entry = stats.setdefault(issue_id, {"n": 0, "lo": event.timestamp, "unhandled": False})
        entry["n"] += 1
        entry["lo"] = min(entry["lo"], event.timestamp)
        entry["unhandled"] = entry["unhandled"] or not event.handled
    params = []
    for issue_id in sorted(stats):  # a fixed order of row locks keeps concurrent workers from deadlocking
        record, entry = latest[issue_id], stats[issue_id]
        params.append(
            {
                "b_id": issue_id,
                "b_n": entry["n"],
                "b_lo": entry["lo"],
                "b_hi": record.event.timestamp,
                "b_level": record.event.level,
                "b_title": clean(record.summary.title, 500),
                "b_culprit": clean(record.summary.culprit, 500),
                "b_value": clean(record.summary.value, 10_000),
                "b_release": clean(record.event.release, 250),
                "b_unhandled": entry["unhandled"],
                "b_now": record.event.received_at,
                "b_bytes": payload_bytes[issue_id],
                **{f"b_{column}": new_impact[(issue_id, kind)] for kind, column in IMPACT_KINDS.items()},
            }
        )
    connection.execute(_UPDATE_ISSUES, params)


def _tag_rows(records: list[tuple[int, EventRecord]]) -> list[dict[str, Any]]:
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}
    for issue_id, record in records:
        event = record.event
        facets = {**{key: value for key, value in event.workflow.items() if value}, **event.tags}
        for key in IMPACT_FACETS:  # counted once, in issue_impact (see schema.IMPACT_FACETS)
            facets.pop(key, None)
        facets["level"] = event.level
        for name, value in (("environment", event.environment), ("release", event.release)):
            if value:
                facets[name] = value
        for key, value in facets.items():
            key_text, value_text = clean(key, 200) or "", clean(value, 200) or ""
            row = rows.setdefault(
                (issue_id, key_text, value_text),
                {"issue_id": issue_id, "key": key_text, "value": value_text, "count": 0, "last_seen": 0.0},
            )
            row["count"] += 1
            row["last_seen"] = max(row["last_seen"], event.timestamp)
    return list(rows.values())


def _event_rows(
    records: list[tuple[int, EventRecord]], compressor: PayloadCompressor, pin: set[int]
) -> list[dict[str, Any]]:
    """The events' rows; the first event in the batch of each issue in ``pin`` is pinned (see schema.events)."""
    rows = []
    unpinned = set(pin)  # the issues whose first event in the batch is still to come
    for issue_id, record in records:
        event, workflow = record.event, record.event.workflow
        event.data["grouping"] = {"hash": record.grouping_hash, "version": record.grouping_version}
        rows.append(
            {
                "project_id": event.project_id,
                "issue_id": issue_id,
                "event_id": event.event_id,
                "timestamp": event.timestamp,
                "received_at": event.received_at,
                "level": event.level,
                "handled": event.handled,
                "environment": clean(event.environment, 64),
                "release": clean(event.release, 250),
                "component": clean(workflow["component"], 200),
                "workflow_id": clean(workflow["workflow_id"], 200),
                "run_id": clean(workflow["run_id"], 200),
                "step_id": clean(workflow["step_id"], 200),
                "tenant": clean(workflow["tenant"], 200),
                "user_key": clean(event.user_key, 320),
                "payload": compressor.compress(
                    event.project_id, orjson.dumps(event.data, option=orjson.OPT_NON_STR_KEYS)
                ),
                "pinned": issue_id in unpinned,
            }
        )
        unpinned.discard(issue_id)
    return rows


def _write_counters(connection: Connection, batch: ParsedBatch) -> None:
    # Counts come from clients: every sum saturates at the column's maximum (see items.MAX_QUANTITY).
    upsert_add(
        connection,
        session_counts,
        [
            {"project_id": p, "hour": h, "release": r, "environment": e, "status": s, "count": min(n, MAX_COUNT)}
            for (p, h, r, e, s), n in batch.sessions.items()
        ],
        ["project_id", "hour", "release", "environment", "status"],
        ["count"],
        ceiling=MAX_COUNT,
    )
    upsert_add(
        connection,
        client_report_counts,
        [
            {"project_id": p, "hour": h, "reason": r, "category": c, "count": min(n, MAX_COUNT)}
            for (p, h, r, c), n in batch.client_reports.items()
        ],
        ["project_id", "hour", "reason", "category"],
        ["count"],
        ceiling=MAX_COUNT,
    )
    fresh_attachments = _fresh_attachments(connection, batch.attachments)
    if fresh_attachments:
        connection.execute(
            insert(attachments),
            [
                {
                    "project_id": a.project_id,
                    "event_id": a.event_id,
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "attachment_type": a.attachment_type,
                    "size": len(a.data),
                    "data": a.data,
                    "created_at": a.created_at,
                }
                for a in fresh_attachments
            ],
        )


def _record_regressions(connection: Connection, records: list[tuple[int, EventRecord]], reopened: list[int]) -> None:
    """A ``regression`` entry in the activity log of each issue the batch reopened, naming its first event."""
    first: dict[int, EventRecord] = {}
    for issue_id, record in records:
        first.setdefault(issue_id, record)
    activity.record_all(
        connection,
        [
            activity.Activity(
                issue_id=issue_id,
                kind="regression",
                actor=activity.STACKWATCH,
                data={
                    "from": "resolved",
                    "to": "unresolved",
                    "event_id": first[issue_id].event.event_id,
                    "release": clean(first[issue_id].event.release, 250),
                },
                at=first[issue_id].event.received_at,
            )
            for issue_id in reopened
        ],
    )


def _latest_received(records: list[tuple[int, EventRecord]]) -> dict[int, float]:
    """Each issue's latest receive time in the batch: the moment a snooze condition is looked at."""
    latest: dict[int, float] = {}
    for issue_id, record in records:
        latest[issue_id] = max(latest.get(issue_id, record.event.received_at), record.event.received_at)
    return latest


def write_batch(connection: Connection, batch: ParsedBatch, compressor: PayloadCompressor) -> BatchResult:
    result = BatchResult()
    _lock_event_ids(connection, batch.events)
    _write_counters(connection, batch)
    records = _fresh_events(connection, batch.events)
    result.duplicates = len(batch.events) - len(records)
    if not records:
        return result
    found, result.new_issues = _issues_of(connection, records)
    with_issue = [(issue.id, record) for issue, record in zip(found, records, strict=True)]
    result.regressions = sorted({issue.id for issue in found if issue.status == "resolved"})
    event_rows = _event_rows(with_issue, compressor, {*result.new_issues, *result.regressions})
    payload_bytes: Counter[int] = Counter()
    for row in event_rows:
        payload_bytes[row["issue_id"]] += len(row["payload"])
    _update_issues(connection, with_issue, _impact(connection, with_issue), payload_bytes)
    _record_regressions(connection, with_issue, result.regressions)
    connection.execute(insert(events), event_rows)
    by_minute = Counter((issue_id, int(r.event.received_at // 60)) for issue_id, r in with_issue)
    upsert_add(
        connection,
        issue_minutes,
        [{"issue_id": i, "minute": m, "count": n} for (i, m), n in sorted(by_minute.items())],
        ["issue_id", "minute"],
        ["count"],
    )
    result.escalations = snooze.wake_batch(connection, _latest_received(with_issue))
    hourly: Counter[tuple[int, int]] = Counter((issue_id, hour_of(r.event.timestamp)) for issue_id, r in with_issue)
    upsert_add(
        connection,
        issue_hourly,
        [{"issue_id": i, "hour": h, "count": n} for (i, h), n in hourly.items()],
        ["issue_id", "hour"],
        ["count"],
    )
    # The same events per project, hour and their own level (the trends page), in the same transaction.
    by_level = Counter((r.event.project_id, hour_of(r.event.timestamp), r.event.level) for _, r in with_issue)
    upsert_add(
        connection,
        project_hourly,
        [{"project_id": p, "hour": h, "level": lv, "count": n} for (p, h, lv), n in sorted(by_level.items())],
        ["project_id", "hour", "level"],
        ["count"],
    )
    upsert_add(connection, issue_tags, _tag_rows(with_issue), ["issue_id", "key", "value"], ["count"], ["last_seen"])
    result.events = len(records)
    result.issue_events.update(issue_id for issue_id, _ in with_issue)
    result.stored = [(issue_id, record.event) for issue_id, record in with_issue]
    return result
