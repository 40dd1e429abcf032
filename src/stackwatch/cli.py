"""The ``stackwatch`` command.

Administrative commands work on the configured database directly, whether or not a server is running, and
create and migrate the database when it does not exist yet.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from stackwatch import __version__
from stackwatch.server.config import ROLES, ConfigError, Settings, load_settings
from stackwatch.server.storage import accounts, db
from stackwatch.server.storage.schema import events, projects

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])
ADMIN_PASSWORD_FILE = "admin-password"


def _store_options(command: F) -> F:
    command = click.option("--database-url", help="sqlite:///PATH or postgresql://… [STACKWATCH_DATABASE_URL]")(command)
    command = click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory [STACKWATCH_DATA_DIR]"
    )(command)
    return command


def _settings(*, server: bool = False, **flags: Any) -> Settings:
    try:
        return load_settings(flags, server=server)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    """The migrated database; its errors end the command with a one-line message."""
    try:
        engine = db.connect(settings.database_url, synchronous=settings.sqlite_synchronous, pool_size=1)
    except OSError as exc:  # the SQLite file's directory cannot be created (a file in the way, no permission)
        raise click.ClickException(f"database {_safe_url(settings.database_url)}: {exc.strerror}") from None
    try:
        db.migrate(engine)
        yield engine
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    except OperationalError as exc:
        raise click.ClickException(f"database {_safe_url(settings.database_url)}: {exc.orig}") from None
    finally:
        engine.dispose()


@contextmanager
def _database(settings: Settings) -> Iterator[Connection]:
    """A write transaction on the migrated database."""
    with _engine(settings) as engine, engine.connect() as connection:
        connection = connection.execution_options(sqlite_write=True)
        with connection.begin():
            yield connection


@click.group()
@click.version_option(__version__, prog_name="stackwatch")
def main() -> None:
    """Stackwatch: self-hosted, Sentry-compatible error tracking."""


@main.command()
@click.option("--host", help="Address to listen on [STACKWATCH_HOST, 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on [STACKWATCH_PORT, 8000]")
@click.option("--role", type=click.Choice(ROLES), help="Parts to run in this process [STACKWATCH_ROLE, all]")
@click.option("--demo", is_flag=True, help="Once up, send the demo workload if the default project has no events")
@_store_options
def serve(demo: bool, **flags: Any) -> None:
    """Run the server: ingest, REST API and (in a child process) the digest worker."""
    import uvicorn

    from stackwatch.server.app import create_app
    from stackwatch.server.services import open_services
    from stackwatch.server.serving import Server

    settings = _settings(server=True, **flags)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with _database(settings) as connection:  # creates and migrates the database on first start
        first = accounts.ensure_defaults(connection)
        dsn = _default_dsn(connection, settings)
        empty = connection.execute(select(events.c.id).where(events.c.project_id == 1).limit(1)).first() is None
    services = open_services(settings, migrate=False)
    _print_banner(settings, first, dsn)
    if demo and dsn and empty and settings.role == "all":
        click.echo("  Demo:       sending a simulated MeshHook workload to the default project (stackwatch demo)")
        threading.Thread(target=_demo_when_up, args=(settings, dsn), name="stackwatch-demo", daemon=True).start()
    app = create_app(settings, services)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    Server(config, on_exit=app.state.live.close if settings.runs_web else None).run()


def _demo_when_up(settings: Settings, dsn: str) -> None:
    """Wait for the server to answer, then run the demo workload against it in child processes."""
    from stackwatch.demo import run_demo

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{settings.port}/healthz", timeout=2):
                break
        except OSError:
            time.sleep(0.2)
    else:
        logging.getLogger("stackwatch.demo").warning("server did not come up; demo not sent")
        return
    results = run_demo(dsn, spool_dir=str(settings.data_dir / "demo-spool"))
    logging.getLogger("stackwatch.demo").info(
        "demo workload sent: %s", ", ".join(f"{r.component} (exit {r.returncode})" for r in results)
    )


def _default_dsn(connection: Connection, settings: Settings) -> str | None:
    """The DSN of the project made at first start, while it exists."""
    try:
        return accounts.project_dsn(connection, settings.base_url, 1)
    except accounts.AccountError:
        return None


def _print_banner(settings: Settings, first: accounts.FirstStart, dsn: str | None) -> None:
    password_file = settings.data_dir / ADMIN_PASSWORD_FILE
    if first.admin_password is not None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{first.admin_email} {first.admin_password}\n")
    if password_file.exists():
        email, _, password = password_file.read_text(encoding="utf-8").strip().partition(" ")
        login = f"{email} / {password}   (kept in {password_file} until you change it)"
    else:
        login = "your administrator account (add one with: stackwatch user create EMAIL --admin)"
    lines = [
        f"Stackwatch {__version__}, role {settings.role}, database {_safe_url(settings.database_url)}",
        f"  Dashboard:  {settings.base_url}/",
        f"  REST API:   {settings.base_url}/api/v1/docs",
        f"  Login:      {login}",
    ]
    if dsn:
        lines.append(f"  DSN:        {dsn}")
    click.echo("\n".join(lines), err=False)
    sys.stdout.flush()


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@main.command()
@_store_options
def migrate(**flags: Any) -> None:
    """Create the database or bring it to the newest schema."""
    settings = _settings(**flags)
    with _database(settings):
        pass
    click.echo(f"database {_safe_url(settings.database_url)} is up to date")


@main.command()
@click.option("--dsn", help="Where to send the events [STACKWATCH_DSN; default: this server's default project]")
@click.option(
    "--runs", type=click.IntRange(1, 10_000), default=12, show_default=True, help="Workflow runs per component"
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the simulated workload and its secrets")
@click.option("--spool-dir", help="The components' spool [STACKWATCH_SPOOL_DIR; default: a per-user folder]")
@_store_options
def demo(dsn: str | None, runs: int, seed: int, spool_dir: str | None, **flags: Any) -> None:
    """Send a simulated MeshHook workload (api, orchestrator, http-executor) through stackwatch.sdk."""
    from stackwatch.demo import CRASHING, run_demo

    dsn = dsn or os.environ.get("STACKWATCH_DSN")
    if not dsn:
        settings = _settings(**flags)
        with _database(settings) as connection:
            dsn = _default_dsn(connection, settings)
        if not dsn:
            raise click.ClickException("no DSN: pass --dsn or set STACKWATCH_DSN (the default project is gone)")
    click.echo(f"sending {runs} workflow runs per component to {dsn.split('@')[-1]} …")
    failed = False
    for result in run_demo(dsn, runs=runs, seed=seed, spool_dir=spool_dir):
        if result.component == CRASHING:
            ok = result.returncode == 1 and "state is corrupt" in result.output
            note = "crashed with a fatal error, as planned" if ok else f"exit {result.returncode}"
        else:
            ok = result.returncode == 0
            note = "done" if ok else f"exit {result.returncode}"
        click.echo(f"  {result.component:<14} {note}")
        if not ok:
            failed = True
            click.echo(result.output, err=True)
    if failed:
        raise click.ClickException("a demo component failed; its output is above")
    click.echo("done: the events appear in the dashboard within seconds")


@main.command()
@click.option("--events", type=click.IntRange(1), required=True, help="Events to add")
@click.option("--issues", type=click.IntRange(1), required=True, help="Issues to spread them over (at most --events)")
@click.option("--project", "project_slug", default="default", show_default=True, help="Slug of an existing project")
@click.option("--days", type=click.FloatRange(0, 90, min_open=True), default=30, show_default=True, help="Time span")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the random generator")
@_store_options
def seed(events: int, issues: int, project_slug: str, days: float, seed: int, **flags: Any) -> None:
    """Fill a project with synthetic issues and events, for performance checks."""
    from stackwatch.server.storage.seed import SeedError, SeedOptions, seed_project

    if events < issues:
        raise click.UsageError("--events must be at least --issues: every issue has an event")
    settings = _settings(**flags)
    with _engine(settings) as engine:
        try:
            result = seed_project(engine, project_slug, SeedOptions(events, issues, days, seed), click.echo)
        except SeedError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"seeded project {project_slug}: {result.issues:,} issues, {result.events:,} events, "
        f"{result.hourly:,} hourly rows, {result.tags:,} tag rows, {result.impact:,} impact rows "
        f"in {result.seconds:.1f} s ({result.events / max(result.seconds, 1e-9):,.0f} events/s)"
    )


@main.group()
def project() -> None:
    """Manage projects."""


@project.command("create")
@click.argument("name")
@_store_options
def project_create(name: str, **flags: Any) -> None:
    """Create a project; prints its DSN as the last line."""
    settings = _settings(**flags)
    with _database(settings) as connection:
        info = accounts.create_project(connection, name)
    click.echo(f"project {info.slug} (id {info.id}) created; its DSN:")
    click.echo(accounts.dsn(settings.base_url, info.public_key, info.id))


@project.command("update")
@click.argument("slug")
@click.option("--scrub-emails/--no-scrub-emails", default=None, help="Redact email addresses in new events")
@click.option("--scrub-ips/--no-scrub-ips", default=None, help="Redact IP addresses in new events")
@click.option("--collect-ips/--no-collect-ips", default=None, help="Fill in the sender's IP for user {{auto}}")
@_store_options
def project_update(
    slug: str, scrub_emails: bool | None, scrub_ips: bool | None, collect_ips: bool | None, **flags: Any
) -> None:
    """Change a project's privacy settings; they apply to events digested from then on."""
    changes = {
        name: value
        for name, value in (("scrub_emails", scrub_emails), ("scrub_ips", scrub_ips), ("collect_ips", collect_ips))
        if value is not None
    }
    if not changes:
        raise click.UsageError("nothing to change: give --scrub-emails, --scrub-ips or --collect-ips (or --no-…)")
    settings = _settings(**flags)
    with _database(settings) as connection:
        if not accounts.update_project(connection, slug, **changes):
            raise click.ClickException(f"no project {slug!r}")
        row = connection.execute(select(projects).where(projects.c.slug == slug)).one()
    click.echo(
        f"project {slug}: scrub_emails={_on(row.scrub_emails)} scrub_ips={_on(row.scrub_ips)} "
        f"collect_ips={_on(row.collect_ips)}"
    )


@project.command("add-member")
@click.argument("slug")
@click.argument("email")
@_store_options
def project_add_member(slug: str, email: str, **flags: Any) -> None:
    """Let a user see the project on the dashboard (administrators see every project)."""
    settings = _settings(**flags)
    with _database(settings) as connection:
        added = accounts.add_member(connection, slug, email)
    click.echo(f"{email.strip().lower()} {'is now' if added else 'was already'} a member of {slug}")


@project.command("remove-member")
@click.argument("slug")
@click.argument("email")
@_store_options
def project_remove_member(slug: str, email: str, **flags: Any) -> None:
    """Take a user's access to the project away."""
    settings = _settings(**flags)
    with _database(settings) as connection:
        removed = accounts.remove_member(connection, slug, email)
    click.echo(f"{email.strip().lower()} {'is no longer' if removed else 'was not'} a member of {slug}")


def _on(value: bool) -> str:
    return "on" if value else "off"


@main.group()
def token() -> None:
    """Manage REST API tokens."""


@token.command("create")
@click.option("--name", default="api", show_default=True, help="What the token is for")
@_store_options
def token_create(name: str, **flags: Any) -> None:
    """Create an API token; prints it as the last line (it is shown only once)."""
    settings = _settings(**flags)
    with _database(settings) as connection:
        value = accounts.create_token(connection, name)
    click.echo(f"API token {name!r} created; use it as 'Authorization: Bearer <token>':")
    click.echo(value)


@main.group()
def user() -> None:
    """Manage dashboard users."""


@user.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the user an administrator")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@_store_options
def user_create(email: str, admin: bool, password_stdin: bool, **flags: Any) -> None:
    """Create a dashboard user."""
    settings = _settings(**flags)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.ClickException("no terminal to ask for a password: pass it with --password-stdin")
    with _database(settings) as connection:
        accounts.create_user(connection, email, password, admin=admin)
    click.echo(f"user {email.strip().lower()} created{' (administrator)' if admin else ''}")


# --- alerts: every change goes through alerts.manage, which validates it (imported when used: the channel
# modules bring their libraries, e.g. Apprise, that the other commands do not need) ------------------------------


def _key_values(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param=param)
        pairs[key.strip()] = value
    return pairs


@contextmanager
def _project(settings: Settings, slug: str) -> Iterator[tuple[Connection, int]]:
    """A write transaction and the id of project ``slug``; an ``AlertError`` ends the command with its message."""
    from stackwatch.server.alerts.manage import AlertError

    with _database(settings) as connection:
        project_id = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).scalar()
        if project_id is None:
            raise click.ClickException(f"no project {slug!r}")
        try:
            yield connection, int(project_id)
        except AlertError as exc:
            raise click.ClickException(str(exc)) from None


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [header, *[tuple("-" if v is None else str(v) for v in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _health(healthy: bool, failures: int) -> str:
    state = "ok" if healthy else "UNHEALTHY"
    return f"{state} ({failures} failed in a row)" if failures else state


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


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
@_store_options
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
    settings = _settings(**flags)
    with _project(settings, project_slug) as (connection, project_id):
        channel_id = manage.create_channel(
            connection, project_id, name=name, kind=kind, config=config, settings=settings, **options
        )
    click.echo(f"channel {name.strip()!r} created in {project_slug}; its id:")
    click.echo(channel_id)


@alert_channel.command("list")
@click.argument("project_slug", metavar="PROJECT")
@_store_options
def alert_channel_list(project_slug: str, **flags: Any) -> None:
    """List a project's channels with their health (secrets are never shown)."""
    from stackwatch.server.alerts import manage

    with _project(_settings(**flags), project_slug) as (connection, project_id):
        channels = manage.list_channels(connection, project_id)
    rows = [
        (
            c["id"],
            c["name"],
            c["kind"],
            c["hourly_cap"],
            _health(c["healthy"], c["consecutive_failures"]),
            c["last_error"],
            _compact(c["config"]),
        )
        for c in channels
    ]
    _table(("ID", "NAME", "KIND", "CAP/H", "HEALTH", "LAST ERROR", "CONFIG"), rows)


@alert_channel.command("test")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("channel_id", metavar="ID", type=int)
@_store_options
def alert_channel_test(project_slug: str, channel_id: int, **flags: Any) -> None:
    """Send a test notification now; exits 1 with the error when it is not delivered."""
    from stackwatch.server.alerts.dispatcher import channel_config, record_health, send_now
    from stackwatch.server.api.alerts import channel_test_notification
    from stackwatch.server.storage.schema import alert_channels

    settings = _settings(**flags)  # the SMTP settings come from the environment, as the server's do
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
    with _database(settings) as connection:
        record_health(connection, row.id, outcome, db.now())
    if not outcome.delivered:
        kind = "permanent" if outcome.permanent else "transient"
        raise click.ClickException(f"not delivered ({kind} error): {outcome.error}")
    click.echo(f"test notification delivered through channel {channel_id} ({row.kind})")


@alert_channel.command("delete")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("channel_id", metavar="ID", type=int)
@_store_options
def alert_channel_delete(project_slug: str, channel_id: int, **flags: Any) -> None:
    """Delete a channel; rules keep their other channels."""
    from stackwatch.server.alerts import manage

    with _project(_settings(**flags), project_slug) as (connection, project_id):
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
                callback=_key_values,
                metavar="KEY=VALUE",
                help="Only events with environment, release, component, workflow_id or level (at or above)",
            ),
            click.option(
                "--tag",
                "tags",
                multiple=True,
                callback=_key_values,
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
    filters = _compact(rule["filters"]) if rule["filters"] else None
    enabled = "yes" if rule["enabled"] else "no"
    return (rule["id"], rule["name"], rule["trigger"], condition, filters, rule["cooldown_minutes"], enabled, channels)


@alert_rule.command("create")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("name")
@click.option("--trigger", required=True, help="new_issue, regression, level, event_frequency or impact")
@_rule_options
@click.option("--disabled", is_flag=True, help="Create the rule switched off")
@_store_options
def alert_rule_create(project_slug: str, name: str, disabled: bool, **options: Any) -> None:
    """Create a rule; prints its id as the last line."""
    from stackwatch.server.alerts import manage

    flags = {key: options.pop(key) for key in ("data_dir", "database_url")}
    spec = {**_rule_spec(options), "name": name, "enabled": not disabled}
    with _project(_settings(**flags), project_slug) as (connection, project_id):
        rule_id = manage.create_rule(connection, project_id, spec)
    click.echo(f"rule {name.strip()!r} created in {project_slug}; its id:")
    click.echo(rule_id)


@alert_rule.command("list")
@click.argument("project_slug", metavar="PROJECT")
@_store_options
def alert_rule_list(project_slug: str, **flags: Any) -> None:
    """List a project's rules."""
    from stackwatch.server.alerts import manage

    with _project(_settings(**flags), project_slug) as (connection, project_id):
        rules = manage.list_rules(connection, project_id)
    header = ("ID", "NAME", "TRIGGER", "CONDITION", "FILTERS", "COOLDOWN", "ENABLED", "CHANNELS")
    _table(header, [_rule_line(rule) for rule in rules])


@alert_rule.command("update")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("rule_id", metavar="ID", type=int)
@click.option("--name", help="A new name")
@click.option("--trigger", help="A new trigger")
@_rule_options
@click.option("--clear-filters", is_flag=True, help="Remove every filter (before applying --filter and --tag)")
@click.option("--enable/--disable", "enabled", default=None, help="Switch the rule on or off")
@_store_options
def alert_rule_update(project_slug: str, rule_id: int, clear_filters: bool, **options: Any) -> None:
    """Change a rule: only the options given change; --filter/--tag replace the filters, --channel the channels."""
    from stackwatch.server.alerts import manage

    flags = {key: options.pop(key) for key in ("data_dir", "database_url")}
    changes = _rule_spec(options)
    if clear_filters:
        changes.setdefault("filters", {})
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    with _project(_settings(**flags), project_slug) as (connection, project_id):
        if not manage.update_rule(connection, project_id, rule_id, changes):
            raise click.ClickException(f"no alert rule {rule_id} in project {project_slug}")
    click.echo(f"rule {rule_id} updated")


@alert_rule.command("delete")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("rule_id", metavar="ID", type=int)
@_store_options
def alert_rule_delete(project_slug: str, rule_id: int, **flags: Any) -> None:
    """Delete a rule."""
    from stackwatch.server.alerts import manage

    with _project(_settings(**flags), project_slug) as (connection, project_id):
        if not manage.delete_rule(connection, project_id, rule_id):
            raise click.ClickException(f"no alert rule {rule_id} in project {project_slug}")
    click.echo(f"rule {rule_id} deleted")
