"""Alert rules against one digested batch, inside the digest's transaction.

What a batch triggers is written to the outbox in the same transaction as the batch itself: a notification exists
exactly when the events that caused it are stored, whatever crashes in between. Nothing here touches the network.

Throttling: a rule notifies about an issue at most once per cooldown. Matching events inside the cooldown are
counted (``alert_throttle.held_back``) and reported by the next notification ("and 37 more events"); a channel
that reached its hourly cap counts what it missed the same way (``alert_channels.held_back``).

A channel that waits for a server setting (an e-mail channel without SMTP: ``channels.waiting_for``) gets nothing:
its notifications are dropped, with one info line per process, rather than kept. SMTP is set when the server starts,
so what would be kept would arrive all at once on the first start with SMTP, as a burst about issues long seen on
the dashboard, and an outbox that only grows meanwhile; the issues themselves are all there.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from stackwatch.server.alerts.message import Notification
from stackwatch.server.alerts.store import IMPACT_KINDS, Rule, level_rank, load_rules
from stackwatch.server.digest.normalize import NormalizedEvent
from stackwatch.server.storage.schema import (
    alert_channels,
    alert_outbox,
    alert_throttle,
    issue_impact,
    issue_minutes,
    issues,
    projects,
)
from stackwatch.server.storage.upsert import insert_ignore

__all__ = ["evaluate_batch", "matches"]

log = logging.getLogger("stackwatch.alerts")
_TOLD: set[str] = set()  # the waiting kinds already reported by this process

Stored = Sequence[tuple[int, NormalizedEvent]]


def matches(rule: Rule, event: NormalizedEvent) -> bool:
    """Whether ``event`` passes the rule's filters (all of them; absent filters pass)."""
    filters = rule.filters
    for key in ("environment", "release"):
        wanted = filters.get(key)
        if wanted is not None and getattr(event, key) != wanted:
            return False
    for key in ("component", "workflow_id"):
        wanted = filters.get(key)
        if wanted is not None and event.workflow.get(key) != wanted:
            return False
    level = filters.get("level")
    if level is not None and level_rank(event.level) < level_rank(level):
        return False
    tags = filters.get("tags")
    if isinstance(tags, dict):
        for key, value in tags.items():
            if event.tags.get(key) != value:
                return False
    return True


def evaluate_batch(
    connection: Connection,
    stored: Stored,
    new_issues: Sequence[int],
    regressions: Sequence[int],
    *,
    now: float,
    base_url: str,
    waiting_kinds: frozenset[str] = frozenset(),
    escalations: Sequence[int] = (),
) -> int:
    """Write the notifications this batch triggers to the outbox; returns how many. Channels of ``waiting_kinds``
    (they cannot send under the server's settings) get none. ``escalations``: the snoozed issues the batch woke."""
    if not stored:
        return 0
    rules = load_rules(connection, {event.project_id for _, event in stored})
    if not rules:
        return 0
    new, regressed = set(new_issues), set(regressions)
    woken = set(escalations)
    candidates: list[tuple[Rule, int, list[NormalizedEvent]]] = []
    for project_rules in rules.values():
        for rule in project_rules:
            by_issue: dict[int, list[NormalizedEvent]] = defaultdict(list)
            for issue_id, event in stored:
                if event.project_id == rule.project_id and matches(rule, event):
                    by_issue[issue_id].append(event)
            candidates += [(rule, issue_id, matched) for issue_id, matched in by_issue.items()]
    if not candidates:
        return 0
    cooling = _cooling_down(connection, candidates, now)
    held: list[dict[str, Any]] = []
    written = 0
    for rule, issue_id, matched in candidates:
        if (rule.id, issue_id) in cooling:
            # Within the cooldown nothing is sent: only count what would have been, for the next message.
            count = _held_count(rule, issue_id, matched, new, regressed, woken)
            if count:
                held.append({"r": rule.id, "i": issue_id, "n": count})
            continue
        fired = _trigger(connection, rule, issue_id, matched, new, regressed, now, woken)
        if fired is not None:
            reason, count, latest = fired
            channels = _sending_channels(connection, rule, waiting_kinds)
            written += _throttled_notify(connection, rule, channels, issue_id, reason, count, latest, now, base_url)
    if held:
        statement = (
            update(alert_throttle)
            .where(alert_throttle.c.rule_id == bindparam("r"), alert_throttle.c.issue_id == bindparam("i"))
            .values(held_back=alert_throttle.c.held_back + bindparam("n"))
        )
        connection.execute(statement, held)
    return written


def _cooling_down(
    connection: Connection, candidates: list[tuple[Rule, int, list[NormalizedEvent]]], now: float
) -> set[tuple[int, int]]:
    """The (rule, issue) pairs among the candidates that are within their rule's cooldown: one query."""
    cooldowns = {rule.id: rule.cooldown_minutes * 60 for rule, _, _ in candidates}
    query = select(alert_throttle.c.rule_id, alert_throttle.c.issue_id, alert_throttle.c.last_sent_at).where(
        alert_throttle.c.rule_id.in_(cooldowns), alert_throttle.c.issue_id.in_({i for _, i, _ in candidates})
    )
    return {
        (rule_id, issue_id)
        for rule_id, issue_id, last_sent_at in connection.execute(query)
        if now - last_sent_at < cooldowns[rule_id]
    }


def _held_count(
    rule: Rule,
    issue_id: int,
    matched: list[NormalizedEvent],
    new: set[int],
    regressed: set[int],
    woken: set[int],
) -> int:
    """How many of these events the rule would have notified about, without the cooldown."""
    if rule.trigger == "new_issue":
        return int(issue_id in new)
    if rule.trigger == "regression":
        return int(issue_id in regressed)
    if rule.trigger == "escalating":
        return int(issue_id in woken)
    if rule.trigger == "level":
        return sum(1 for e in matched if level_rank(e.level) >= level_rank(rule.level or "fatal"))
    return len(matched)  # frequency and impact: every matching event counts, without counting the window again


def _trigger(
    connection: Connection,
    rule: Rule,
    issue_id: int,
    matched: list[NormalizedEvent],
    new: set[int],
    regressed: set[int],
    now: float,
    woken: set[int],
) -> tuple[str, int, NormalizedEvent] | None:
    """(reason, matching events, the latest of them) when the rule fires for this issue, else None."""
    if rule.trigger == "new_issue":
        return ("New issue", 1, matched[0]) if issue_id in new else None
    if rule.trigger == "regression":
        return ("Regression", 1, matched[-1]) if issue_id in regressed else None
    if rule.trigger == "escalating":
        return ("Escalating", 1, matched[-1]) if issue_id in woken else None
    if rule.trigger == "level":
        at_level = [e for e in matched if level_rank(e.level) >= level_rank(rule.level or "fatal")]
        if not at_level:
            return None
        return f"{at_level[-1].level.capitalize()} event", len(at_level), at_level[-1]
    window = max(1, rule.window_minutes or 1)
    threshold = rule.threshold or 0
    since = now - window * 60
    # Counted from what the digest keeps per issue, never from event rows, which retention may have thinned.
    if rule.trigger == "event_frequency":
        # Whole minutes: the one ``since`` falls in counts whole, so the window is up to a minute longer.
        seen = connection.execute(
            select(func.coalesce(func.sum(issue_minutes.c.count), 0)).where(
                issue_minutes.c.issue_id == issue_id, issue_minutes.c.minute >= int(since // 60)
            )
        ).scalar_one()
        if seen <= threshold:
            return None
        return f"{seen} events in the last {window} minutes", len(matched), matched[-1]
    if rule.trigger == "impact":
        kind = rule.impact_kind or "users"
        seen = connection.execute(
            select(func.count()).where(
                issue_impact.c.issue_id == issue_id,
                issue_impact.c.kind == IMPACT_KINDS.get(kind, "user"),
                issue_impact.c.last_seen >= since,
            )
        ).scalar_one()
        if seen <= threshold:
            return None
        return f"{seen} {kind} affected in the last {window} minutes", len(matched), matched[-1]
    return None


def _sending_channels(connection: Connection, rule: Rule, waiting_kinds: frozenset[str]) -> tuple[int, ...]:
    """The rule's channels that can send; those of a waiting kind are left out, said once per process and kind."""
    if not waiting_kinds:
        return rule.channel_ids
    query = select(alert_channels.c.id, alert_channels.c.kind).where(alert_channels.c.id.in_(rule.channel_ids))
    kinds: dict[int, str] = {channel_id: kind for channel_id, kind in connection.execute(query)}
    waiting = {kinds[c] for c in rule.channel_ids if kinds.get(c) in waiting_kinds}
    for kind in sorted(waiting - _TOLD):
        _TOLD.add(kind)
        log.info(
            "alerts to %s channels are dropped until the server can send them (e-mail needs SMTP: "
            "STACKWATCH_SMTP_HOST, then a restart); the issues themselves are all kept",
            kind,
        )
    return tuple(c for c in rule.channel_ids if kinds.get(c) not in waiting_kinds)


def _throttled_notify(
    connection: Connection,
    rule: Rule,
    channel_ids: tuple[int, ...],
    issue_id: int,
    reason: str,
    count: int,
    latest: NormalizedEvent,
    now: float,
    base_url: str,
) -> int:
    insert_ignore(
        connection,
        alert_throttle,
        [{"rule_id": rule.id, "issue_id": issue_id, "last_sent_at": 0.0, "held_back": 0}],
        ["rule_id", "issue_id"],
        ["rule_id"],
    )
    key = (alert_throttle.c.rule_id == rule.id, alert_throttle.c.issue_id == issue_id)
    throttle = connection.execute(select(alert_throttle).where(*key).with_for_update()).one()
    if now - throttle.last_sent_at < rule.cooldown_minutes * 60:
        connection.execute(update(alert_throttle).where(*key).values(held_back=alert_throttle.c.held_back + count))
        return 0
    # This notification stands for one event; the rest of this batch's matches go to the next one.
    connection.execute(update(alert_throttle).where(*key).values(last_sent_at=now, held_back=count - 1))
    issue = connection.execute(select(issues).where(issues.c.id == issue_id)).one()
    slug = connection.execute(select(projects.c.slug).where(projects.c.id == rule.project_id)).scalar_one()
    written = 0
    for channel_id in channel_ids:
        channel_backlog = _room_on_channel(connection, channel_id, now)
        if channel_backlog is None:  # over the hourly cap: this event and those it stands for wait for the next
            connection.execute(
                update(alert_channels)
                .where(alert_channels.c.id == channel_id)
                .values(held_back=alert_channels.c.held_back + throttle.held_back + 1)
            )
            continue
        held = int(throttle.held_back) + channel_backlog
        notification = _notification(issue, slug, reason, latest, held, base_url)
        connection.execute(
            insert(alert_outbox).values(
                idempotency_key=notification.idempotency_key,
                rule_id=rule.id,
                channel_id=channel_id,
                issue_id=issue_id,
                payload=json.dumps(notification.as_json()),
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        written += 1
    return written


def _room_on_channel(connection: Connection, channel_id: int, now: float) -> int | None:
    """``None`` when the channel reached its hourly cap; else the events the cap held back so far, which the
    message about to be queued reports (the channel's count is reset)."""
    channel = connection.execute(
        select(alert_channels.c.hourly_cap, alert_channels.c.held_back).where(alert_channels.c.id == channel_id)
    ).one()
    sent = connection.execute(
        select(func.count())
        .select_from(alert_outbox)
        .where(alert_outbox.c.channel_id == channel_id, alert_outbox.c.created_at >= now - 3600)
    ).scalar_one()
    if sent >= channel.hourly_cap:
        return None
    if channel.held_back:
        connection.execute(update(alert_channels).where(alert_channels.c.id == channel_id).values(held_back=0))
    return int(channel.held_back)


def _notification(
    issue: Any, slug: str, reason: str, latest: NormalizedEvent, held_back: int, base_url: str
) -> Notification:
    return Notification.of_issue(
        issue,
        key=f"swn_{uuid.uuid4().hex}",
        project=slug,
        reason=reason,
        base_url=base_url,
        environment=latest.environment,
        release=latest.release,
        component=latest.workflow.get("component"),
        workflow_id=latest.workflow.get("workflow_id"),
        run_id=latest.workflow.get("run_id"),
        step_id=latest.workflow.get("step_id"),
        held_back=held_back,
    )
