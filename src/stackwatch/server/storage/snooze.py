"""Snoozed issues: ignored until a condition is met, then unresolved again by themselves ("escalating").

An issue is snoozed by ignoring it with a condition (``PATCH /api/v1/issues/{id}`` with ``"ignore"``, or the
issue page's Ignore choices). The condition is kept in three columns of ``schema.issues``:

* ``snooze``: its kind, one of ``CONDITIONS``;
* ``snooze_value``: what was asked for, N (or the moment, for ``until``);
* ``snooze_threshold``: what the issue is compared with — the event count (``events``) or user count (``users``)
  at which it comes back, counted from the moment of snoozing; N for ``per_hour``; the moment for ``until``.

The digest wakes issues whose batch meets their condition (``wake_batch``: the per-hour count is the sum of
``issue_minutes`` over the last 60 minutes, after the batch), and the worker's periodic pass those whose
``until`` has passed (``wake_due``); the first event after ``until`` wakes it too, if it comes first. Waking
sets the status back to unresolved, clears the snooze and records an ``escalating`` activity entry (by
Stackwatch, naming the condition). Any other status change clears the snooze as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from stackwatch.server.storage import activity
from stackwatch.server.storage.db import iso
from stackwatch.server.storage.schema import issue_minutes, issues

__all__ = [
    "CONDITIONS",
    "MAX_N",
    "MAX_UNTIL_DAYS",
    "Snooze",
    "SnoozeError",
    "cleared",
    "parse",
    "shown",
    "shown_value",
    "wake_batch",
    "wake_due",
]

# kind: what it means (docs/api.md says the same).
CONDITIONS: Mapping[str, str] = {
    "until": "until the moment given (ISO 8601) has passed",
    "events": "until N more events arrived, counted from the moment of snoozing",
    "users": "until N more distinct users were affected, counted from the moment of snoozing",
    "per_hour": "until N events arrive within an hour (the last 60 minutes)",
}
MAX_N = 10**9
# The furthest ``until`` taken: far enough for "forever, but look again", near enough to stay a valid date when
# shown (a time zone offset on 9999-12-31 would otherwise make it year 10000).
MAX_UNTIL_DAYS = 100 * 366
_HOUR_MINUTES = 60


class SnoozeError(ValueError):
    """A condition that cannot be kept: the message says why (the API answers 422 with it)."""


@dataclass(frozen=True, slots=True)
class Snooze:
    """A condition as asked for: its kind and N (or the moment, a UNIX time, for ``until``)."""

    kind: str
    value: float

    def values(self) -> dict[str, Any]:
        """The column values that snooze an issue now: thresholds counted from its current counts."""
        threshold: Any = {
            "events": issues.c.event_count + int(self.value),
            "users": issues.c.user_count + int(self.value),
        }.get(self.kind, self.value)
        return {"snooze": self.kind, "snooze_value": self.value, "snooze_threshold": threshold}


def cleared() -> dict[str, Any]:
    """The column values of an issue that is not snoozed."""
    return {"snooze": None, "snooze_value": None, "snooze_threshold": None}


def _moment(text: object, now: float) -> float:
    if not isinstance(text, str):
        raise SnoozeError("ignore.until: expected an ISO 8601 time such as 2030-01-31T12:00:00Z")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SnoozeError(f"ignore.until: {text[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = moment.timestamp()
    if stamp <= now:
        raise SnoozeError("ignore.until: must be in the future")
    if stamp > now + MAX_UNTIL_DAYS * 86400:
        raise SnoozeError("ignore.until: at most 100 years ahead (without an end, ignore the issue without ignore)")
    return stamp


def parse(body: object, now: float) -> Snooze:
    """The condition of an ``ignore`` object: exactly one key of ``CONDITIONS``; N a whole number 1..10^9."""
    if not isinstance(body, dict) or len(body) != 1:
        raise SnoozeError(f"ignore: expected an object with one of {', '.join(CONDITIONS)}")
    ((kind, value),) = body.items()
    if kind not in CONDITIONS:
        raise SnoozeError(f"ignore: unknown condition {str(kind)[:40]!r}; expected one of {', '.join(CONDITIONS)}")
    if kind == "until":
        return Snooze(kind, _moment(value, now))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_N:
        raise SnoozeError(f"ignore.{kind}: expected a whole number from 1 to {MAX_N}")
    return Snooze(kind, float(value))


def shown_value(condition: Snooze) -> int | str:
    """N, or the ISO moment for ``until``: the condition's value as the API takes it."""
    return str(iso(condition.value)) if condition.kind == "until" else int(condition.value)


def shown(row: Any) -> dict[str, Any] | None:
    """The snooze of an issue row as the API shows it: the condition (events/users also say the count at which
    the issue comes back), or None."""
    if row.snooze is None or row.snooze_value is None:
        return None
    if row.snooze == "until":
        return {"until": iso(float(row.snooze_value))}
    condition: dict[str, Any] = {row.snooze: int(row.snooze_value)}
    if row.snooze == "events":
        condition["at_count"] = int(row.snooze_threshold)
    elif row.snooze == "users":
        condition["at_user_count"] = int(row.snooze_threshold)
    return condition


def _met(row: Any, hour_count: int, latest: float) -> bool:
    threshold = float(row.snooze_threshold)
    if row.snooze == "events":
        return bool(row.event_count >= threshold)
    if row.snooze == "users":
        return bool(row.user_count >= threshold)
    if row.snooze == "per_hour":
        return hour_count >= threshold
    return latest >= threshold  # until: the first event after it


def _hour_counts(connection: Connection, issue_ids: list[int], latest: Mapping[int, float]) -> dict[int, int]:
    """Events of each issue in the 60 minutes up to its latest event of the batch (``issue_minutes``)."""
    if not issue_ids:
        return {}
    since = {issue_id: int(latest[issue_id] // 60) - _HOUR_MINUTES + 1 for issue_id in issue_ids}
    query = (
        select(issue_minutes.c.issue_id, issue_minutes.c.minute, issue_minutes.c.count.label("n"))
        .where(issue_minutes.c.issue_id.in_(issue_ids), issue_minutes.c.minute >= min(since.values()))
        .order_by(issue_minutes.c.issue_id)
    )
    counts: dict[int, int] = dict.fromkeys(issue_ids, 0)
    for row in connection.execute(query):
        if row.minute >= since[row.issue_id]:
            counts[row.issue_id] += int(row.n)
    return counts


def _wake(connection: Connection, rows: Iterable[Any], at: Mapping[int, float], why: Mapping[int, Any]) -> list[int]:
    """Unresolve the snoozed issues of ``rows`` (still ignored), clear their snoozes, log ``escalating``."""
    woken = sorted({int(row.id) for row in rows})
    if not woken:
        return []
    connection.execute(
        update(issues)
        .where(issues.c.id.in_(woken), issues.c.status == "ignored")
        .values(status="unresolved", resolved_at=None, **cleared())
    )
    activity.record_all(
        connection,
        [
            activity.Activity(
                issue_id=issue_id,
                kind="escalating",
                actor=activity.STACKWATCH,
                data={"from": "ignored", "to": "unresolved", **why[issue_id]},
                at=at[issue_id],
            )
            for issue_id in woken
        ],
    )
    return woken


_COLUMNS = (
    issues.c.id,
    issues.c.snooze,
    issues.c.snooze_value,
    issues.c.snooze_threshold,
    issues.c.event_count,
    issues.c.user_count,
)


def wake_batch(connection: Connection, latest: Mapping[int, float]) -> list[int]:
    """Wake the issues of a digest batch whose condition the batch met; ``latest``: each issue's latest receive
    time in the batch. Called after the batch's counts and ``issue_minutes`` are written, in its transaction;
    returns the ids woken (they count as escalating for alert rules)."""
    if not latest:
        return []
    query = (
        select(*_COLUMNS)
        .where(issues.c.id.in_(sorted(latest)), issues.c.status == "ignored", issues.c.snooze.is_not(None))
        .order_by(issues.c.id)
    )
    rows = connection.execute(query).all()
    hourly = _hour_counts(connection, [int(r.id) for r in rows if r.snooze == "per_hour"], latest)
    met = [row for row in rows if _met(row, hourly.get(int(row.id), 0), latest[int(row.id)])]
    why = {int(row.id): {"condition": shown(row)} for row in met}
    return _wake(connection, met, {int(row.id): latest[int(row.id)] for row in met}, why)


def wake_due(connection: Connection, now: float) -> list[int]:
    """Wake every issue whose ``until`` has passed at ``now`` (the worker's periodic pass); returns their ids."""
    query = (
        select(*_COLUMNS)
        .where(issues.c.snooze == "until", issues.c.snooze_threshold <= now, issues.c.status == "ignored")
        .order_by(issues.c.id)
        .with_for_update()
    )
    rows = connection.execute(query).all()
    why = {int(row.id): {"condition": shown(row)} for row in rows}
    return _wake(connection, rows, {int(row.id): now for row in rows}, why)
