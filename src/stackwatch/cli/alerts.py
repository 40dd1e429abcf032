"""``stackwatch alert``: channels and rules.

Every change goes through ``alerts.manage``, which validates it (imported when used: the channel modules bring
their libraries, e.g. Apprise, that the other commands do not need).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy import Connection, select

from stackwatch.cli.common import compact, key_values, main, settings_from, store_options, table, transaction
from stackwatch.server.config import Settings
from stackwatch.server.storage import db
from stackwatch.server.storage.schema import projects

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _project(settings: Settings, slug: str) -> Iterator[tuple[Connection, int]]:
    """A write transaction and the id of project ``slug``; an ``AlertError`` ends the command with its message."""
    from stackwatch.server.alerts.manage import AlertError

    with transaction(settings) as connection:
        project_id = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).scalar()
        if project_id is None:
            raise click.ClickException(f"no project {slug!r}")
        try:
            yield connection, int(project_id)
        except AlertError as exc:
            raise click.ClickException(str(exc)) from None


def _health(status: str, healthy: bool, failures: int) -> str:
    if status.startswith("needs_"):  # waiting for a server setting is no failure
        return status.replace("_", " ").replace("smtp", "SMTP")
    state = "ok" if healthy else "UNHEALTHY"
    return f"{state} ({failures} failed in a row)" if failures else state


@main.group()
def alert() -> None:
    """Manage alert channels and rules (see docs/alerts.md)."""


@alert.group("channel")
def alert_channel() -> None:
    """Where notifications go: email, Slack, webhooks, Apprise."""


@alert_channel.command("create")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("name")
@click.option("--kind", required=True, help="email, slack, webhook or apprise")
@click.option("--config", "config_text", required=True, help='The kind\'s settings as JSON, e.g. {"to": ["a@b.c"]}')
@click.option("--hourly-cap", type=int, help="Messages per hour at most [20]")
@store_options
def alert_channel_create(
    project_slug: str, name: str, kind: str, config_text: str, hourly_cap: int | None, **flags: Any
) -> None:
    """Create a channel; prints its id as the last line."""
    from stackwatch.server.alerts import manage

    try:
        config = json.loads(config_text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="'--config'") from None
    if not isinstance(config, dict):
        raise click.BadParameter("expected a JSON object", param_hint="'--config'")
    options = {} if hourly_cap is None else {"hourly_cap": hourly_cap}
    settings = settings_from(**flags)
    with _project(settings, project_slug) as (connection, project_id):
        channel_id = manage.create_channel(
            connection, project_id, name=name, kind=kind, config=config, settings=settings, **options
        )
    click.echo(f"channel {name.strip()!r} created in {project_slug}; its id:")
    click.echo(channel_id)


@alert_channel.command("list")
@click.argument("project_slug", metavar="PROJECT")
@store_options
def alert_channel_list(project_slug: str, **flags: Any) -> None:
    """List a project's channels with their health (secrets are never shown)."""
    from stackwatch.server.alerts import manage

    settings = settings_from(**flags)  # the SMTP settings come from the environment, as the server's do
    with _project(settings, project_slug) as (connection, project_id):
        channels = manage.list_channels(connection, project_id, settings)
    rows = [
        (
            c["id"],
            c["name"],
            c["kind"],
            c["hourly_cap"],
            _health(c["status"], c["healthy"], c["consecutive_failures"]),
            c["last_error"],
            compact(c["config"]),
        )
        for c in channels
    ]
    table(("ID", "NAME", "KIND", "CAP/H", "HEALTH", "LAST ERROR", "CONFIG"), rows)


@alert_channel.command("test")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("channel_id", metavar="ID", type=int)
@store_options
def alert_channel_test(project_slug: str, channel_id: int, **flags: Any) -> None:
    """Send a test notification now; exits 1 with the error when it is not delivered."""
    from stackwatch.server.alerts.dispatcher import channel_config, record_health, send_now
    from stackwatch.server.api.alerts import channel_test_notification
    from stackwatch.server.storage.schema import alert_channels

    settings = settings_from(**flags)  # the SMTP settings come from the environment, as the server's do
    with _project(settings, project_slug) as (connection, project_id):
        row = connection.execute(
            select(alert_channels).where(alert_channels.c.id == channel_id, alert_channels.c.project_id == project_id)
        ).first()
        if row is None:
            raise click.ClickException(f"no alert channel {channel_id} in project {project_slug}")
        config = channel_config(connection, row.config)
    # Sent outside the transaction: on SQLite a write transaction held while waiting on the network blocks ingest.
    notification = channel_test_notification(project_slug, f"{settings.base_url}/projects/{project_slug}")
    outcome = send_now(row.kind, config, notification, settings)
    with transaction(settings) as connection:
        record_health(connection, row.id, outcome, db.now())
    if not outcome.delivered:
        kind = "permanent" if outcome.permanent else "transient"
        raise click.ClickException(f"not delivered ({kind} error): {outcome.error}")
    click.echo(f"test notification delivered through channel {channel_id} ({row.kind})")


@alert_channel.command("delete")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("channel_id", metavar="ID", type=int)
@store_options
def alert_channel_delete(project_slug: str, channel_id: int, **flags: Any) -> None:
    """Delete a channel; rules keep their other channels."""
    from stackwatch.server.alerts import manage

    with _project(settings_from(**flags), project_slug) as (connection, project_id):
        if not manage.delete_channel(connection, project_id, channel_id):
            raise click.ClickException(f"no alert channel {channel_id} in project {project_slug}")
    click.echo(f"channel {channel_id} deleted")


@alert.group("rule")
def alert_rule() -> None:
    """When to notify: new issues, regressions, levels, frequency, impact."""


def _rule_options(command: F) -> F:
    """The options of ``rule create`` and ``rule update``; unset ones are ``None`` (or empty)."""
    for option in reversed(
        (
            click.option("--level", help="level trigger: notify at or above this level [fatal]"),
            click.option("--threshold", type=int, help="event_frequency/impact: notify above this count"),
            click.option("--window-minutes", type=int, help="event_frequency/impact: counted over these minutes"),
            click.option("--impact-kind", help="impact: count distinct users, runs or workflows"),
            click.option(
                "--filter",
                "filters",
                multiple=True,
                callback=key_values,
                metavar="KEY=VALUE",
                help="Only events with environment, release, component, workflow_id or level (at or above)",
            ),
            click.option(
                "--tag",
                "tags",
                multiple=True,
                callback=key_values,
                metavar="KEY=VALUE",
                help="Only events with this tag",
            ),
            click.option("--cooldown-minutes", type=int, help="At most one notification per issue this often [30]"),
            click.option("--channel", "channels", type=int, multiple=True, metavar="ID", help="Where to notify"),
        )
    ):
        command = option(command)
    return command


def _rule_spec(values: dict[str, Any]) -> dict[str, Any]:
    """The options given, as ``alerts.manage`` takes them."""
    spec = {name: value for name, value in values.items() if value not in (None, (), {})}
    filters, tags = spec.pop("filters", {}), spec.pop("tags", {})
    if tags:
        filters = {**filters, "tags": tags}
    if filters:
        spec["filters"] = filters
    if "channels" in spec:
        spec["channels"] = list(spec["channels"])
    return spec


def _rule_line(rule: dict[str, Any]) -> tuple[Any, ...]:
    condition = {"level": rule["level"], "impact": rule["impact_kind"]}.get(rule["trigger"])
    if rule["threshold"] is not None:
        condition = f"{condition + ' ' if condition else ''}>{rule['threshold']}/{rule['window_minutes']}min"
    channels = ",".join(str(c) for c in rule["channels"])
    filters = compact(rule["filters"]) if rule["filters"] else None
    enabled = "yes" if rule["enabled"] else "no"
    return (rule["id"], rule["name"], rule["trigger"], condition, filters, rule["cooldown_minutes"], enabled, channels)


@alert_rule.command("create")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("name")
@click.option("--trigger", required=True, help="new_issue, regression, escalating, level, event_frequency or impact")
@_rule_options
@click.option("--disabled", is_flag=True, help="Create the rule switched off")
@store_options
def alert_rule_create(project_slug: str, name: str, disabled: bool, **options: Any) -> None:
    """Create a rule; prints its id as the last line."""
    from stackwatch.server.alerts import manage

    flags = {key: options.pop(key) for key in ("data_dir", "database_url")}
    spec = {**_rule_spec(options), "name": name, "enabled": not disabled}
    with _project(settings_from(**flags), project_slug) as (connection, project_id):
        rule_id = manage.create_rule(connection, project_id, spec)
    click.echo(f"rule {name.strip()!r} created in {project_slug}; its id:")
    click.echo(rule_id)


@alert_rule.command("list")
@click.argument("project_slug", metavar="PROJECT")
@store_options
def alert_rule_list(project_slug: str, **flags: Any) -> None:
    """List a project's rules."""
    from stackwatch.server.alerts import manage

    with _project(settings_from(**flags), project_slug) as (connection, project_id):
        rules = manage.list_rules(connection, project_id)
    header = ("ID", "NAME", "TRIGGER", "CONDITION", "FILTERS", "COOLDOWN", "ENABLED", "CHANNELS")
    table(header, [_rule_line(rule) for rule in rules])


@alert_rule.command("update")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("rule_id", metavar="ID", type=int)
@click.option("--name", help="A new name")
@click.option("--trigger", help="A new trigger")
@_rule_options
@click.option("--clear-filters", is_flag=True, help="Remove every filter (before applying --filter and --tag)")
@click.option("--enable/--disable", "enabled", default=None, help="Switch the rule on or off")
@store_options
def alert_rule_update(project_slug: str, rule_id: int, clear_filters: bool, **options: Any) -> None:
    """Change a rule: only the options given change; --filter/--tag replace the filters, --channel the channels."""
    from stackwatch.server.alerts import manage

    flags = {key: options.pop(key) for key in ("data_dir", "database_url")}
    changes = _rule_spec(options)
    if clear_filters:
        changes.setdefault("filters", {})
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    with _project(settings_from(**flags), project_slug) as (connection, project_id):
        if not manage.update_rule(connection, project_id, rule_id, changes):
            raise click.ClickException(f"no alert rule {rule_id} in project {project_slug}")
    click.echo(f"rule {rule_id} updated")


@alert_rule.command("delete")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("rule_id", metavar="ID", type=int)
@store_options
def alert_rule_delete(project_slug: str, rule_id: int, **flags: Any) -> None:
    """Delete a rule."""
    from stackwatch.server.alerts import manage

    with _project(settings_from(**flags), project_slug) as (connection, project_id):
        if not manage.delete_rule(connection, project_id, rule_id):
            raise click.ClickException(f"no alert rule {rule_id} in project {project_slug}")
    click.echo(f"rule {rule_id} deleted")
