"""Running the server and what goes with it: ``serve``, ``migrate``, ``demo``, ``seed``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import Connection, select

from stackwatch import __version__
from stackwatch.cli import common
from stackwatch.cli.common import main, open_engine, safe_url, settings_from, store_options, transaction
from stackwatch.server.config import ROLES, Settings
from stackwatch.server.storage import accounts, datadir, db, running
from stackwatch.server.storage.filemodes import secure_data_dir
from stackwatch.server.storage.schema import issues

if TYPE_CHECKING:
    from stackwatch.demo.result import DemoResult
    from stackwatch.server.services import Services

WORKLOADS = ("auto", "js", "python")


@main.command()
@click.option("--host", help="Address to listen on [STACKWATCH_HOST, 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on [STACKWATCH_PORT, 8000]")
@click.option("--role", type=click.Choice(ROLES), help="Parts to run in this process [STACKWATCH_ROLE, all]")
@click.option("--demo", is_flag=True, help="Once up, send the demo workload if the default project has no events")
@common.init_option
@store_options
def serve(demo: bool, init: bool, **flags: Any) -> None:
    """Run the server: ingest, REST API and (in a child process) the digest worker."""
    import uvicorn

    from stackwatch.server import logs
    from stackwatch.server.app import create_app
    from stackwatch.server.serving import Server, http_limits

    settings = settings_from(server=True, init=init, **flags)
    logs.configure(settings.log_level)  # uvicorn's handlers get the redacting filter in Server
    secure_data_dir(settings.data_dir)  # 0700, its files 0600, and umask 077 for what the server makes there
    try:
        running.hold_shared(settings.data_dir)  # `stackwatch restore` refuses while any server holds it
    except datadir.DataDirError as exc:
        raise click.ClickException(str(exc)) from None
    with transaction(settings, init=init) as connection:  # creates and migrates the database on first start
        first = accounts.ensure_defaults(connection)
        dsn = _default_dsn(connection, settings)
        # From the issues' counters: no index of events leads with the project (the event id one leads with the id).
        empty = (
            connection.execute(
                select(issues.c.id).where(issues.c.project_id == 1, issues.c.stored_events > 0).limit(1)
            ).first()
            is None
        )
    services = _open_services(settings)
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
        **http_limits(settings),
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: a client on the same machine (or
        # behind a proxy that passes the header through) could then pick its own address. Only the configured
        # proxies are believed; with none, the headers are not read at all.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )
    Server(config, on_exit=app.state.live.close if settings.runs_web else None).run()


def _open_services(settings: Settings) -> Services:
    """The server's parts; on SQLite this opens the inbox file, whose errors end the start with one line."""
    from stackwatch.server.services import open_services

    inbox = db.inbox_path(settings.database_url)
    with common.database_errors(f"inbox {inbox}" if inbox else f"database {safe_url(settings.database_url)}"):
        return open_services(settings, migrate=False)


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


def _login_line(settings: Settings, first: accounts.FirstStart) -> str:
    """The password on the start that made it, and only then: later starts (whose output ends up in logs, in a
    terminal's scroll-back, in a service manager's journal) say where it is kept."""
    password_file = settings.data_dir / accounts.ADMIN_PASSWORD_FILE
    if first.admin_password is not None:
        accounts.write_admin_password(settings.data_dir, first.admin_password)
        return (
            f"{first.admin_email} / {first.admin_password}   "
            f"(the password of {first.admin_email} is kept in {password_file} until you change it)"
        )
    kept = accounts.read_admin_password(settings.data_dir)
    if kept is not None:
        return f"{kept[0]}, whose password is in {password_file} (removed when that password is changed)"
    return "your administrator account (add one with: stackwatch user create EMAIL --admin)"


def _print_banner(settings: Settings, first: accounts.FirstStart, dsn: str | None) -> None:
    login = _login_line(settings, first)
    lines = [
        f"Stackwatch {__version__}, role {settings.role}, database {safe_url(settings.database_url)}",
        f"  Dashboard:  {settings.base_url}/",
        f"  REST API:   {settings.base_url}/api/v1/docs",
        f"  Login:      {login}",
    ]
    if dsn:
        lines.append(f"  DSN:        {dsn}")
    click.echo("\n".join(lines), err=False)
    sys.stdout.flush()


@main.command()
@common.init_option
@store_options
def migrate(init: bool, **flags: Any) -> None:
    """Create the database or bring it to the newest schema."""
    settings = settings_from(init=init, **flags)
    with transaction(settings, init=init):
        pass
    click.echo(f"database {safe_url(settings.database_url)} is up to date")


@main.command()
@click.option("--dsn", help="Where to send the events [STACKWATCH_DSN; default: this server's default project]")
@click.option(
    "--runs",
    type=click.IntRange(1, 10_000),
    default=12,
    show_default=True,
    help="Workflow runs (of each component, in the Python workload)",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the simulated workload and its secrets")
@click.option("--spool-dir", help="The components' spool [STACKWATCH_SPOOL_DIR; default: a per-user folder]")
@click.option(
    "--workload",
    type=click.Choice(WORKLOADS),
    default="auto",
    show_default=True,
    help="js: the MeshHook example on @stackwatch/sdk (needs node, npm and a checkout); python: on stackwatch.sdk; "
    "auto: js when it can run, else python",
)
@store_options
def demo(dsn: str | None, runs: int, seed: int, spool_dir: str | None, workload: str, **flags: Any) -> None:
    """Send a simulated MeshHook workload (api, orchestrator, HTTP executor) through the Stackwatch SDKs."""
    from stackwatch.demo import javascript

    dsn = dsn or os.environ.get("STACKWATCH_DSN")
    if not dsn:
        settings = settings_from(**flags)
        with transaction(settings) as connection:
            dsn = _default_dsn(connection, settings)
        if not dsn:
            raise click.ClickException("no DSN: pass --dsn or set STACKWATCH_DSN (the default project is gone)")
    why_not_js = javascript.missing()
    if workload == "js" and why_not_js:
        raise click.ClickException(f"the JavaScript workload needs {why_not_js}")
    if workload == "auto":
        workload = "python" if why_not_js else "js"
        if why_not_js:
            click.echo(f"the JavaScript workload needs {why_not_js}: running the Python one")
    where = dsn.split("@")[-1]
    if workload == "js":
        click.echo(f"sending {runs} workflow runs of the MeshHook example (JavaScript) to {where} …")
        failed = _report_js(javascript.run_js_demo(dsn, runs=runs, seed=seed, spool_dir=spool_dir))
    else:
        click.echo(f"sending {runs} workflow runs per component to {where} …")
        failed = _report_python(runs, seed, dsn, spool_dir)
    if failed:
        raise click.ClickException("a demo component failed; its output is above")
    click.echo("done: the events appear in the dashboard within seconds")


def _report_python(runs: int, seed: int, dsn: str, spool_dir: str | None) -> bool:
    """Run the Python workload and print how each component ended; True if one failed in an unplanned way."""
    from stackwatch.demo import CRASHING, run_demo

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
    return failed


def _report_js(result: DemoResult) -> bool:
    """Print how the JavaScript workload ended (its last line is a JSON summary); True if it failed."""
    from stackwatch.demo import javascript

    summary: dict[str, Any] = {}
    with contextlib.suppress(ValueError, IndexError):
        summary = json.loads(result.output.strip().splitlines()[-1])
    if result.returncode != 0 or not summary:
        click.echo(f"  {result.component:<14} exit {result.returncode}")
        click.echo(result.output, err=True)
        return True
    workers = summary.get("workers", {})
    for component in javascript.COMPONENTS:
        click.echo(f"  {component:<14} done")
    click.echo(f"  runs: {workers.get('completed')} completed, {workers.get('failed')} failed as planned")
    return False


@main.command()
@click.option("--events", type=click.IntRange(1), required=True, help="Events to add")
@click.option("--issues", type=click.IntRange(1), required=True, help="Issues to spread them over (at most --events)")
@click.option("--project", "project_slug", default="default", show_default=True, help="Slug of an existing project")
@click.option("--days", type=click.FloatRange(0, 90, min_open=True), default=30, show_default=True, help="Time span")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the random generator")
@store_options
def seed(events: int, issues: int, project_slug: str, days: float, seed: int, **flags: Any) -> None:
    """Fill a project with synthetic issues and events, for performance checks."""
    from stackwatch.server.storage.seed import SeedError, SeedOptions, seed_project

    if events < issues:
        raise click.UsageError("--events must be at least --issues: every issue has an event")
    settings = settings_from(**flags)
    with open_engine(settings) as engine:
        try:
            result = seed_project(engine, project_slug, SeedOptions(events, issues, days, seed), click.echo)
        except SeedError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"seeded project {project_slug}: {result.issues:,} issues, {result.events:,} events, "
        f"{result.hourly:,} hourly rows, {result.tags:,} tag rows, {result.impact:,} impact rows "
        f"in {result.seconds:.1f} s ({result.events / max(result.seconds, 1e-9):,.0f} events/s)"
    )
