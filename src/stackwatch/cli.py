"""The ``stackwatch`` command.

Administrative commands work on the configured database directly, whether or not a server is running, and
create and migrate the database when it does not exist yet.
"""

from __future__ import annotations

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
from sqlalchemy import Connection, select
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
def _database(settings: Settings) -> Iterator[Connection]:
    """A write transaction on the migrated database."""
    try:
        engine = db.connect(settings.database_url, synchronous=settings.sqlite_synchronous, pool_size=1)
    except OSError as exc:  # the SQLite file's directory cannot be created (a file in the way, no permission)
        raise click.ClickException(f"database {_safe_url(settings.database_url)}: {exc.strerror}") from None
    try:
        db.migrate(engine)
        with engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                yield connection
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    except OperationalError as exc:
        raise click.ClickException(f"database {_safe_url(settings.database_url)}: {exc.orig}") from None
    finally:
        engine.dispose()


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
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


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
