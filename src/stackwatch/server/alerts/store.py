"""Alert rules and channels in the database: the defaults of a new project, and rules as the digest reads them."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select

from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import LEVELS, alert_channels, alert_rule_channels, alert_rules

__all__ = [
    "DEFAULT_COOLDOWN_MINUTES",
    "DEFAULT_HOURLY_CAP",
    "FILTER_KEYS",
    "IMPACT_KINDS",
    "MAX_WINDOW_MINUTES",
    "Rule",
    "create_default_alerts",
    "level_rank",
    "load_rules",
]

DEFAULT_COOLDOWN_MINUTES = 30
DEFAULT_HOURLY_CAP = 20
FILTER_KEYS = ("environment", "release", "component", "workflow_id", "level", "tags")
# impact trigger kind → the events column whose distinct values are counted
MAX_WINDOW_MINUTES = 24 * 60  # the longest window of an event_frequency or impact rule
# An impact rule's kind (plural, as in the API) and the issue_impact kind it counts.
IMPACT_KINDS = {"users": "user", "runs": "run", "workflows": "workflow"}
_RANK = {level: len(LEVELS) - i for i, level in enumerate(LEVELS)}  # fatal highest


def level_rank(level: str | None) -> int:
    return _RANK.get(level or "", 0)


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    project_id: int
    name: str
    trigger: str
    level: str | None
    threshold: int | None
    window_minutes: int | None
    impact_kind: str | None
    filters: dict[str, Any]
    cooldown_minutes: int
    channel_ids: tuple[int, ...] = field(default=())


def load_rules(connection: Connection, project_ids: set[int]) -> dict[int, list[Rule]]:
    """The enabled rules of these projects that have at least one channel, by project."""
    if not project_ids:
        return {}
    channels: dict[int, list[int]] = defaultdict(list)
    query = (
        select(alert_rule_channels.c.rule_id, alert_rule_channels.c.channel_id)
        .join(alert_rules, alert_rules.c.id == alert_rule_channels.c.rule_id)
        .where(alert_rules.c.project_id.in_(project_ids), alert_rules.c.enabled.is_(True))
        .order_by(alert_rule_channels.c.channel_id)
    )
    for rule_id, channel_id in connection.execute(query):
        channels[rule_id].append(channel_id)
    rules: dict[int, list[Rule]] = defaultdict(list)
    query = (
        select(alert_rules)
        .where(alert_rules.c.project_id.in_(project_ids), alert_rules.c.enabled.is_(True))
        .order_by(alert_rules.c.id)
    )
    for row in connection.execute(query):
        if not channels.get(row.id):
            continue
        try:
            filters = json.loads(row.filters)
        except ValueError:
            filters = {}
        rules[row.project_id].append(
            Rule(
                id=row.id,
                project_id=row.project_id,
                name=row.name,
                trigger=row.trigger,
                level=row.level,
                threshold=row.threshold,
                window_minutes=row.window_minutes,
                impact_kind=row.impact_kind,
                filters=filters if isinstance(filters, dict) else {},
                cooldown_minutes=row.cooldown_minutes,
                channel_ids=tuple(channels[row.id]),
            )
        )
    return rules


def create_default_alerts(connection: Connection, project_id: int) -> None:
    """What a new project starts with: new issues, regressions and fatal events in production, by email to the
    administrators (every user with the administrator flag, looked up when a message is sent)."""
    created = now()
    channel_id = connection.execute(
        insert(alert_channels)
        .values(
            project_id=project_id,
            name="Administrators",
            kind="email",
            config=json.dumps({"to": [], "admins": True}),
            hourly_cap=DEFAULT_HOURLY_CAP,
            created_at=created,
        )
        .returning(alert_channels.c.id)
    ).scalar_one()
    for name, trigger, level, filters in (
        ("New issue", "new_issue", None, {}),
        ("Regression", "regression", None, {}),
        ("Fatal in production", "level", "fatal", {"environment": "production"}),
    ):
        rule_id = connection.execute(
            insert(alert_rules)
            .values(
                project_id=project_id,
                name=name,
                trigger=trigger,
                level=level,
                filters=json.dumps(filters),
                cooldown_minutes=DEFAULT_COOLDOWN_MINUTES,
                enabled=True,
                created_at=created,
            )
            .returning(alert_rules.c.id)
        ).scalar_one()
        connection.execute(insert(alert_rule_channels).values(rule_id=rule_id, channel_id=channel_id))
