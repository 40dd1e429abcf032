"""The ``stackwatch`` command: administrative commands on a fresh data directory or a PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from starlette.testclient import TestClient

from stackwatch.cli import main
from stackwatch.server.app import create_app
from stackwatch.server.config import Settings, load_settings
from stackwatch.server.services import open_services
from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import projects, users
from tests.support import event_envelope, exception_event


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[tuple[CliRunner, list[str], Path]]:
    """A runner with a clean environment, and the store options for this backend.

    SQLite gets only ``--data-dir`` (a directory that does not exist yet); PostgreSQL gets ``--database-url``.
    """
    data_dir = tmp_path / "data"
    assert not data_dir.exists()
    options = ["--data-dir", str(data_dir)]
    if not database_url.startswith("sqlite"):
        options += ["--database-url", database_url]
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    yield runner, options, data_dir


def run(runner: CliRunner, args: list[str], input: str | None = None) -> Result:
    result = runner.invoke(main, args, input=input, catch_exceptions=True)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def settings_for(database_url: str, data_dir: Path) -> Settings:
    return load_settings(
        {"data_dir": str(data_dir), "database_url": database_url}, {"STACKWATCH_SECRET_KEY": "test-secret-key"}
    )


def last_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_migrate_creates_the_database(cli: tuple[CliRunner, list[str], Path], database_url: str) -> None:
    runner, options, data_dir = cli
    result = run(runner, ["migrate", *options])
    assert "up to date" in result.stdout
    if database_url.startswith("sqlite"):
        assert (data_dir / "stackwatch.sqlite3").exists()
    run(runner, ["migrate", *options])  # and again: nothing to do
    services = open_services(settings_for(database_url, data_dir), migrate=False)
    try:
        with services.engine.connect() as connection:
            assert connection.execute(select(users.c.id)).first() is None  # tables exist, empty
    finally:
        services.close()


def test_project_create_prints_a_working_dsn(cli: tuple[CliRunner, list[str], Path], database_url: str) -> None:
    runner, options, data_dir = cli
    first = run(runner, ["project", "create", "Orders API", *options])
    second = run(runner, ["project", "create", "Orders API", *options])
    dsn = last_line(first)
    parts = urlsplit(dsn)
    assert parts.scheme == "http"
    assert parts.hostname == "127.0.0.1" and parts.port == 8000
    key, project_id = parts.username, parts.path.strip("/")
    assert key and project_id.isdigit()
    assert last_line(second) != dsn
    assert "orders-api-2" in second.stdout  # a second project of the same name gets its own slug

    settings = settings_for(database_url, data_dir)
    services = open_services(settings)
    try:
        with TestClient(create_app(settings, services, run_worker=False)) as client:
            event = exception_event()
            response = client.post(
                f"/api/{project_id}/envelope/",
                content=event_envelope(event),
                headers={"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7"},
            )
            assert response.status_code == 200, response.text
            wrong = client.post(
                f"/api/{int(project_id) + 1}/envelope/",
                content=event_envelope(exception_event()),
                headers={"X-Sentry-Auth": f"Sentry sentry_key={key}"},
            )
            assert wrong.status_code == 403
        assert services.digester.drain() == 1
    finally:
        services.close()


def test_project_update_changes_privacy_settings(cli: tuple[CliRunner, list[str], Path], database_url: str) -> None:
    runner, options, data_dir = cli
    run(runner, ["project", "create", "Orders", *options])
    result = run(runner, ["project", "update", "orders", "--scrub-emails", "--no-collect-ips", *options])
    assert "scrub_emails=on scrub_ips=off collect_ips=off" in result.stdout
    result = run(runner, ["project", "update", "orders", "--scrub-ips", "--no-scrub-emails", *options])
    assert "scrub_emails=off scrub_ips=on collect_ips=off" in result.stdout
    settings = settings_for(database_url, data_dir)
    services = open_services(settings, migrate=False)
    try:
        with services.engine.connect() as connection:
            row = connection.execute(select(projects).where(projects.c.slug == "orders")).one()
        assert (row.scrub_emails, row.scrub_ips, row.collect_ips) == (False, True, False)
    finally:
        services.close()
    missing = runner.invoke(main, ["project", "update", "nope", "--scrub-ips", *options])
    assert missing.exit_code == 1 and "no project 'nope'" in missing.output
    nothing = runner.invoke(main, ["project", "update", "orders", *options])
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    assert "Traceback" not in missing.output + nothing.output


def test_token_create_prints_a_working_token(cli: tuple[CliRunner, list[str], Path], database_url: str) -> None:
    runner, options, data_dir = cli
    result = run(runner, ["token", "create", "--name", "ci", *options])
    token = last_line(result)
    assert token.startswith(accounts.TOKEN_PREFIX)
    settings = settings_for(database_url, data_dir)
    services = open_services(settings)
    try:
        with TestClient(create_app(settings, services, run_worker=False)) as client:
            assert client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    finally:
        services.close()


def test_user_create(cli: tuple[CliRunner, list[str], Path], database_url: str) -> None:
    runner, options, data_dir = cli
    result = run(
        runner, ["user", "create", "Ops@Example.com", "--admin", "--password-stdin", *options], "correct horse\n"
    )
    assert "ops@example.com" in result.stdout
    run(runner, ["user", "create", "viewer@example.com", "--password-stdin", *options], "another password\n")

    duplicate = runner.invoke(main, ["user", "create", "ops@example.com", "--password-stdin", *options], "whatever12\n")
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.output
    assert "Traceback" not in duplicate.output
    short = runner.invoke(main, ["user", "create", "x@example.com", "--password-stdin", *options], input="short\n")
    assert short.exit_code == 1
    assert "8 characters" in short.output
    no_password = runner.invoke(main, ["user", "create", "y@example.com", *options], input="")
    assert no_password.exit_code == 1
    assert "--password-stdin" in no_password.output

    services = open_services(settings_for(database_url, data_dir), migrate=False)
    try:
        with services.engine.connect() as connection:
            rows = {row.email: row for row in connection.execute(select(users))}
    finally:
        services.close()
    assert set(rows) == {"ops@example.com", "viewer@example.com"}
    assert rows["ops@example.com"].is_admin is True
    assert rows["viewer@example.com"].is_admin is False
    assert accounts.verify_password(rows["ops@example.com"].password_hash, "correct horse")
    assert not accounts.verify_password(rows["ops@example.com"].password_hash, "correct horse\n")


@contextmanager
def app_client(database_url: str, data_dir: Path) -> Iterator[TestClient]:
    """The server's app on the database the commands used, in this process."""
    settings = settings_for(database_url, data_dir)
    services = open_services(settings)
    try:
        with TestClient(create_app(settings, services, run_worker=False)) as client:
            yield client
    finally:
        services.close()


def test_token_list_and_revoke(cli: tuple[CliRunner, list[str], Path], database_url: str) -> None:
    runner, options, data_dir = cli
    admin = last_line(run(runner, ["token", "create", "--name", "ci", *options]))
    reader_created = run(runner, ["token", "create", "--name", "grafana", "--read-only", *options])
    assert "read-only" in reader_created.stdout
    reader = last_line(reader_created)
    listed = run(runner, ["token", "list", *options]).stdout.splitlines()
    assert listed[0].split() == ["ID", "NAME", "SCOPE", "USER", "CREATED", "LAST", "USED"]
    rows = {line.split()[1]: line.split() for line in listed[1:]}
    assert rows["grafana"][0] == "2" and rows["grafana"][2] == "read" and rows["grafana"][-1] == "never"
    assert rows["ci"][0] == "1" and rows["ci"][2] == "admin" and rows["ci"][3] == "-"
    assert admin not in "\n".join(listed) and reader not in "\n".join(listed)

    with app_client(database_url, data_dir) as client:
        assert client.get("/api/v1/projects", headers={"Authorization": f"Bearer {reader}"}).status_code == 200
        change = client.patch(
            "/api/v1/projects/default", json={"scrub_ips": True}, headers={"Authorization": f"Bearer {reader}"}
        )
        assert change.status_code == 403
        assert run(runner, ["token", "revoke", "2", *options]).stdout.strip() == "API token 2 revoked"
        assert client.get("/api/v1/projects", headers={"Authorization": f"Bearer {reader}"}).status_code == 401
        assert client.get("/api/v1/projects", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    used = {line.split()[1]: line for line in run(runner, ["token", "list", *options]).stdout.splitlines()[1:]}
    assert set(used) == {"ci"} and not used["ci"].endswith("never")  # revoked ones only with --all; last used shown
    everything = run(runner, ["token", "list", "--all", *options]).stdout.splitlines()
    assert everything[0].split()[-1] == "REVOKED"
    assert "grafana" in everything[1] and everything[1].endswith("UTC") and everything[2].endswith("no")
    again = run(runner, ["token", "revoke", "2", *options])
    assert "was revoked already" in again.stdout
    for unknown in ("999", "99999999999999"):
        missing = runner.invoke(main, ["token", "revoke", unknown, *options])
        assert missing.exit_code == 1 and missing.output.strip() == f"Error: no API token {unknown}"
    assert runner.invoke(main, ["token", "revoke", "abc", *options]).exit_code == 2


def test_token_create_for_a_user(cli: tuple[CliRunner, list[str], Path], database_url: str) -> None:
    """A token made with --user acts as that user: it sees that user's projects, assigned:me and saved searches are
    theirs."""
    runner, options, data_dir = cli
    run(runner, ["user", "create", "ops@example.com", "--password-stdin", *options], "correct horse\n")
    run(runner, ["project", "create", "Orders", *options])
    run(runner, ["project", "add-member", "orders", "ops@example.com", *options])
    created = run(runner, ["token", "create", "--name", "ops-cli", "--user", "Ops@Example.com", *options])
    assert "of ops@example.com" in created.stdout
    token = last_line(created)
    listed = {line.split()[1]: line.split() for line in run(runner, ["token", "list", *options]).stdout.splitlines()}
    assert listed["ops-cli"][3] == "ops@example.com"
    unknown = runner.invoke(main, ["token", "create", "--user", "nobody@example.com", *options])
    assert unknown.exit_code == 1 and "no user nobody@example.com" in unknown.output
    assert "Traceback" not in unknown.output
    headers = {"Authorization": f"Bearer {token}"}
    with app_client(database_url, data_dir) as client:
        mine = client.get("/api/v1/projects/orders/issues", params={"query": "assigned:me"}, headers=headers)
        assert mine.status_code == 200, mine.text
        saved = client.post(
            "/api/v1/projects/orders/saved-searches", json={"name": "mine", "query": "assigned:me"}, headers=headers
        )
        assert saved.status_code == 201, saved.text


def login_session(client: TestClient, email: str, password: str) -> int:
    page = client.get("/login").text
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"email": email, "password": password, "next": "/", "csrf_token": csrf}
    return client.post("/login", data=form, follow_redirects=False).status_code


def test_user_set_password_ends_sessions(cli: tuple[CliRunner, list[str], Path], database_url: str) -> None:
    runner, options, data_dir = cli
    run(runner, ["user", "create", "ops@example.com", "--admin", "--password-stdin", *options], "first password\n")
    data_dir.mkdir(exist_ok=True)  # PostgreSQL: the commands needed no data directory
    (data_dir / accounts.ADMIN_PASSWORD_FILE).write_text("ops@example.com first password\n")
    with app_client(database_url, data_dir) as client:
        assert login_session(client, "ops@example.com", "first password") == 303
        assert client.get("/", follow_redirects=False).status_code == 200
        changed = run(
            runner, ["user", "set-password", "Ops@Example.com", "--password-stdin", *options], "second password\n"
        )
        assert "sessions have ended" in changed.stdout
        assert client.get("/", follow_redirects=False).status_code == 303  # the session has ended
        client.cookies.clear()
        assert login_session(client, "ops@example.com", "first password") == 401
        assert login_session(client, "ops@example.com", "second password") == 303
    assert not (data_dir / accounts.ADMIN_PASSWORD_FILE).exists()  # it no longer held the password

    # Written by an earlier version: "email password" (this one writes the password alone, of the first admin).
    (data_dir / accounts.ADMIN_PASSWORD_FILE).write_text("admin@stackwatch.local generated\n")
    run(runner, ["user", "set-password", "ops@example.com", "--password-stdin", *options], "third password\n")
    assert (data_dir / accounts.ADMIN_PASSWORD_FILE).exists()  # another account's password: still true
    (data_dir / accounts.ADMIN_PASSWORD_FILE).write_text("generated\n")  # the first administrator's
    run(runner, ["user", "set-password", "ops@example.com", "--password-stdin", *options], "fourth password\n")
    assert (data_dir / accounts.ADMIN_PASSWORD_FILE).exists()
    short = runner.invoke(main, ["user", "set-password", "ops@example.com", "--password-stdin", *options], "short\n")
    assert short.exit_code == 1 and "8 characters" in short.output
    unknown = runner.invoke(
        main, ["user", "set-password", "x@example.com", "--password-stdin", *options], "long enough\n"
    )
    assert unknown.exit_code == 1 and unknown.output.strip() == "Error: no user x@example.com"
    no_terminal = runner.invoke(main, ["user", "set-password", "ops@example.com", *options], input="")
    assert no_terminal.exit_code == 1 and "--password-stdin" in no_terminal.output


def test_admin_commands_need_no_secret_key(tmp_path: Path, database_url: str) -> None:
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    result = runner.invoke(main, ["migrate", "--data-dir", str(tmp_path / "d"), "--database-url", database_url])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["migrate"], {"STACKWATCH_PORT": "eighty"}, "STACKWATCH_PORT"),
        (["migrate", "--database-url", "mysql://localhost/db"], {}, "--database-url"),
        (["project", "create", "x"], {"STACKWATCH_DATABASE_URL": "nonsense"}, "STACKWATCH_DATABASE_URL"),
        (["token", "create"], {"STACKWATCH_SECRET_KEY_FILE": "/nonexistent/key"}, "STACKWATCH_SECRET_KEY_FILE"),
        (["migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/nothing"], {}, "database"),
        (["project", "create", "  "], {}, "needs a name"),
    ],
)
def test_bad_config_is_a_clean_error(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    runner = CliRunner(env={**{name: None for name in os.environ if name.startswith("STACKWATCH_")}, **env})
    result = runner.invoke(main, [*args, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a ClickException, not a crash
    assert "Error:" in result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_unusable_data_dir_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    result = runner.invoke(main, ["migrate", "--data-dir", str(blocker / "data")])
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert str(blocker / "data") in result.output


def stackwatch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m stackwatch ARGS`` with none of the caller's STACKWATCH_* settings, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACKWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "stackwatch", *args], capture_output=True, text=True, env={**clean, **env}, timeout=60
    )


def test_python_dash_m_runs_the_command(tmp_path: Path) -> None:
    created = stackwatch("project", "create", "Web", "--data-dir", str(tmp_path / "data"))
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().splitlines()[-1].startswith("http://")
    bad = stackwatch("migrate", "--data-dir", str(tmp_path / "data"), STACKWATCH_LOG_LEVEL="loud")
    assert bad.returncode == 1
    assert "STACKWATCH_LOG_LEVEL" in bad.stderr
    assert "Traceback" not in bad.stderr
    version = stackwatch("--version")
    assert version.returncode == 0 and "stackwatch" in version.stdout


def test_serve_with_an_unusable_data_dir_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    result = stackwatch("serve", "--port", "1", "--data-dir", str(blocker / "data"))
    assert result.returncode == 1
    assert "STACKWATCH_DATA_DIR" in result.stderr
    assert "Traceback" not in result.stderr
