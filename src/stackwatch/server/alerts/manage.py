"""Creating, changing and listing alert rules and channels: the one place that validates them, for the REST API,
the CLI and the dashboard alike. Errors are ``AlertError`` with a message a user can act on."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from stackwatch.server.alerts import channels as channel_modules
from stackwatch.server.alerts.dispatcher import UNHEALTHY_AFTER
from stackwatch.server.alerts.store import (
    DEFAULT_COOLDOWN_MINUTES,
    DEFAULT_HOURLY_CAP,
    FILTER_KEYS,
    IMPACT_KINDS,
    MAX_WINDOW_MINUTES,
)
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import (
    ALERT_TRIGGERS,
    LEVELS,
    alert_channels,
    alert_rule_channels,
    alert_rules,
)

__all__ = [
    "AlertError",
    "create_channel",
    "create_rule",
    "delete_channel",
    "delete_rule",
    "get_rule",
    "list_channels",
    "list_rules",
    "public_channel",
    "update_rule",
]


class AlertError(ValueError):
    """An alert rule or channel that cannot be stored as asked; the message says why."""


def create_channel(
    connection: Connection,
    project_id: int,
    *,
    name: str,
    kind: str,
    config: dict[str, Any],
    hourly_cap: int = DEFAULT_HOURLY_CAP,
    settings: Any = None,
) -> int:
    """Store a channel; with ``settings``, a target on a private network is refused when the settings say so."""
    try:
        stored = channel_modules.validate(kind, dict(config), settings=settings)
    except ValueError as error:
        raise AlertError(str(error)) from None
    if not name.strip():
        raise AlertError("a channel needs a name")
    if not 1 <= hourly_cap <= 10_000:
        raise AlertError("hourly_cap must be between 1 and 10000")
    return int(
        connection.execute(
            insert(alert_channels)
            .values(
                project_id=project_id,
                name=name.strip()[:200],
                kind=kind,
                config=json.dumps(stored),
                hourly_cap=hourly_cap,
                created_at=now(),
            )
            .returning(alert_channels.c.id)
        ).scalar_one()
    )


def public_channel(row: Any, settings: Any = None) -> dict[str, Any]:
    """A channel as the API shows it: configuration without secrets, and its health. ``status`` is ``healthy``,
    ``unhealthy`` (three failures in a row) or, under ``settings`` that leave it unable to send, what it waits
    for (``needs_smtp``), which is no failure: ``waiting`` then says how to end it."""
    config = json.loads(row.config)
    try:
        shown = channel_modules.get(row.kind).public(config)
    except ValueError:
        shown = {}
    if config.get("admins"):
        shown["admins"] = True
    healthy = row.consecutive_failures < UNHEALTHY_AFTER
    waiting = channel_modules.waiting_for(row.kind, settings)
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "config": shown,
        "hourly_cap": row.hourly_cap,
        "healthy": healthy,
        "status": f"needs_{waiting}" if waiting else "healthy" if healthy else "unhealthy",
        "waiting": channel_modules.WAITING_MESSAGES.get(waiting) if waiting else None,
        "consecutive_failures": row.consecutive_failures,
        "last_error": row.last_error,
        "last_failure_at": row.last_failure_at,
        "last_success_at": row.last_success_at,
    }


def list_channels(connection: Connection, project_id: int, settings: Any = None) -> list[dict[str, Any]]:
    """The project's channels as ``public_channel`` shows them (under ``settings``, with what they wait for)."""
    query = select(alert_channels).where(alert_channels.c.project_id == project_id).order_by(alert_channels.c.id)
    return [public_channel(row, settings) for row in connection.execute(query)]


def delete_channel(connection: Connection, project_id: int, channel_id: int) -> bool:
    done = connection.execute(
        delete(alert_channels).where(alert_channels.c.id == channel_id, alert_channels.c.project_id == project_id)
    )
    return bool(done.rowcount)


MAX_THRESHOLD = 1_000_000_000  # the column is a 32-bit integer


def _rule_values(spec: dict[str, Any]) -> dict[str, Any]:
    trigger = spec.get("trigger")
    if trigger not in ALERT_TRIGGERS:
        raise AlertError(f"trigger must be one of {', '.join(ALERT_TRIGGERS)}")
    filters = spec.get("filters") or {}
    if not isinstance(filters, dict) or set(filters) - set(FILTER_KEYS):
        raise AlertError(f"filters may only hold {', '.join(FILTER_KEYS)}")
    if "level" in filters and filters["level"] not in LEVELS:
        raise AlertError(f"filters.level must be one of {', '.join(LEVELS)}")
    tags = filters.get("tags")
    if tags is not None and not (
        isinstance(tags, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    ):
        raise AlertError("filters.tags must map tag names to values (strings)")
    for key in ("environment", "release", "component", "workflow_id"):
        if key in filters and not isinstance(filters[key], str):
            raise AlertError(f"filters.{key} must be a string")
    values: dict[str, Any] = {
        "trigger": trigger,
        "filters": json.dumps(filters),
        "level": None,
        "threshold": None,
        "window_minutes": None,
        "impact_kind": None,
    }
    if trigger == "level":
        level = spec.get("level") or "fatal"
        if level == "critical":
            level = "fatal"
        if level not in LEVELS:
            raise AlertError(f"level must be one of {', '.join(LEVELS)}")
        values["level"] = level
    if trigger in ("event_frequency", "impact"):
        threshold, window = spec.get("threshold"), spec.get("window_minutes")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold <= MAX_THRESHOLD:
            raise AlertError(
                f"a {trigger} rule needs threshold, a whole number from 0 to {MAX_THRESHOLD} (fires above it)"
            )
        if not isinstance(window, int) or not 1 <= window <= MAX_WINDOW_MINUTES:
            raise AlertError(f"a {trigger} rule needs window_minutes, between 1 and {MAX_WINDOW_MINUTES}")
        values.update(threshold=threshold, window_minutes=window)
    if trigger == "impact":
        kind = spec.get("impact_kind")
        if kind not in IMPACT_KINDS:
            raise AlertError(f"impact_kind must be one of {', '.join(IMPACT_KINDS)}")
        values["impact_kind"] = kind
    cooldown = spec.get("cooldown_minutes", DEFAULT_COOLDOWN_MINUTES)
    if not isinstance(cooldown, int) or not 0 <= cooldown <= 7 * 24 * 60:
        raise AlertError("cooldown_minutes must be a whole number of minutes, up to a week")
    values["cooldown_minutes"] = cooldown
    values["enabled"] = bool(spec.get("enabled", True))
    name = str(spec.get("name") or "").strip()
    if not name:
        raise AlertError("a rule needs a name")
    values["name"] = name[:200]
    return values


def _check_channels(connection: Connection, project_id: int, channel_ids: Any) -> list[int]:
    if not isinstance(channel_ids, list) or not channel_ids or not all(isinstance(c, int) for c in channel_ids):
        raise AlertError("a rule needs channels: a list of one or more channel ids")
    known = set(
        connection.execute(
            select(alert_channels.c.id).where(
                alert_channels.c.project_id == project_id, alert_channels.c.id.in_(channel_ids)
            )
        ).scalars()
    )
    missing = sorted(set(channel_ids) - known)
    if missing:
        raise AlertError(f"no channel {missing[0]} in this project")
    return sorted(known)


def _set_channels(connection: Connection, rule_id: int, channel_ids: list[int]) -> None:
    connection.execute(delete(alert_rule_channels).where(alert_rule_channels.c.rule_id == rule_id))
    connection.execute(insert(alert_rule_channels), [{"rule_id": rule_id, "channel_id": c} for c in channel_ids])


def create_rule(connection: Connection, project_id: int, spec: dict[str, Any]) -> int:
    """Validate everything first, then write: a refused rule leaves nothing behind."""
    values = _rule_values(spec)
    channel_ids = _check_channels(connection, project_id, spec.get("channels"))
    rule_id = int(
        connection.execute(
            insert(alert_rules).values(project_id=project_id, created_at=now(), **values).returning(alert_rules.c.id)
        ).scalar_one()
    )
    _set_channels(connection, rule_id, channel_ids)
    return rule_id


def update_rule(connection: Connection, project_id: int, rule_id: int, changes: dict[str, Any]) -> bool:
    current = get_rule(connection, project_id, rule_id)
    if current is None:
        return False
    merged = {**current, **changes}
    values = _rule_values(merged)
    channel_ids = _check_channels(connection, project_id, merged["channels"])
    connection.execute(update(alert_rules).where(alert_rules.c.id == rule_id).values(**values))
    if "channels" in changes:
        _set_channels(connection, rule_id, channel_ids)
    return True


def delete_rule(connection: Connection, project_id: int, rule_id: int) -> bool:
    done = connection.execute(
        delete(alert_rules).where(alert_rules.c.id == rule_id, alert_rules.c.project_id == project_id)
    )
    return bool(done.rowcount)


def get_rule(connection: Connection, project_id: int, rule_id: int) -> dict[str, Any] | None:
    """One rule of the project, as ``list_rules`` gives it; ``None`` when the project has no such rule."""
    row = connection.execute(
        select(alert_rules).where(alert_rules.c.id == rule_id, alert_rules.c.project_id == project_id)
    ).first()
    if row is None:
        return None
    channel_ids = connection.execute(
        select(alert_rule_channels.c.channel_id)
        .where(alert_rule_channels.c.rule_id == rule_id)
        .order_by(alert_rule_channels.c.channel_id)
    ).scalars()
    return {
        "id": row.id,
        "name": row.name,
        "trigger": row.trigger,
        "level": row.level,
        "threshold": row.threshold,
        "window_minutes": row.window_minutes,
        "impact_kind": row.impact_kind,
        "filters": json.loads(row.filters),
        "cooldown_minutes": row.cooldown_minutes,
        "enabled": row.enabled,
        "channels": list(channel_ids),
    }


def list_rules(connection: Connection, project_id: int) -> list[dict[str, Any]]:
    ids = connection.execute(
        select(alert_rules.c.id).where(alert_rules.c.project_id == project_id).order_by(alert_rules.c.id)
    ).scalars()
    return [rule for rule_id in list(ids) if (rule := get_rule(connection, project_id, rule_id)) is not None]
