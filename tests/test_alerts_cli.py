"""``stackwatch alert``: channels and rules from the command line, on a fresh data directory or PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from stackwatch.cli import main
from stackwatch.server.alerts import manage
from stackwatch.server.alerts.channels.webhook import sign
from stackwatch.server.config import load_settings
from stackwatch.server.services import open_services
from tests.alert_support import Answer, RecordingHandler, RecordingServer, smtp_server

SECRET = "cli-hook-secret-8d0b6f"
KEY = {"STACKWATCH_SECRET_KEY": "test-secret-key"}


class Cli:
    """The ``stackwatch`` command on this test's store, with a project ``orders`` created through it."""

    def __init__(self, runner: CliRunner, options: list[str], database_url: str, data_dir: Path):
        self.runner, self.options = runner, options
        self.database_url, self.data_dir = database_url, data_dir

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(main, [*args, *self.options], env=env, catch_exceptions=True)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Result:
        result = self(*args, env=env)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def fails(self, *args: str, code: int = 1) -> str:
        """The one-line error of a command that must fail with ``code`` and no traceback."""
        result = self(*args)
        assert result.exit_code == code, result.output
        assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
        return result.output.strip().splitlines()[-1]

    def created_id(self, *args: str) -> int:
        return int(self.ok(*args).stdout.strip().splitlines()[-1])

    def stored(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The project's channels and rules, read from the database."""
        settings = load_settings({"data_dir": str(self.data_dir), "database_url": self.database_url}, KEY)
        services = open_services(settings, migrate=False)
        try:
            with services.engine.connect() as connection:
                return manage.list_channels(connection, 1), manage.list_rules(connection, 1)
        finally:
            services.close()


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[Cli]:
    """Like tests/test_cli.py: a clean environment, ``--data-dir`` for SQLite, ``--database-url`` for PostgreSQL."""
    data_dir = tmp_path / "data"
    options = ["--data-dir", str(data_dir)]
    if not database_url.startswith("sqlite"):
        options += ["--database-url", database_url]
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    command = Cli(runner, options, database_url, data_dir)
    command.ok("project", "create", "Orders")
    yield command


def webhook(cli: Cli, url: str) -> int:
    config = f'{{"url": "{url}", "secret": "{SECRET}"}}'
    return cli.created_id("alert", "channel", "create", "orders", "Hook", "--kind", "webhook", "--config", config)


def test_channel_create_list_delete(cli: Cli) -> None:
    listed = cli.ok("alert", "channel", "list", "orders").stdout
    assert "Administrators" in listed and '"admins":true' in listed
    email = cli.created_id(
        "alert",
        "channel",
        "create",
        "orders",
        "On call",
        "--kind",
        "email",
        "--config",
        '{"to": ["oncall@example.com"]}',
    )
    capped = ("--hourly-cap", "3")
    hook = cli.created_id(
        "alert", "channel", "create", "orders", "Hook", "--kind", "webhook", "--config",
        f'{{"url": "https://hooks.example.com/in/deep", "secret": "{SECRET}"}}', *capped,
    )  # fmt: skip
    listed = cli.ok("alert", "channel", "list", "orders").stdout
    assert "On call" in listed and "oncall@example.com" in listed and "https://hooks.example.com/…" in listed
    assert SECRET not in listed and "/in/deep" not in listed
    channels, _ = cli.stored()
    assert {c["id"]: c["hourly_cap"] for c in channels}[hook] == 3

    assert cli.ok("alert", "channel", "delete", "orders", str(email)).stdout.strip() == f"channel {email} deleted"
    assert email not in {c["id"] for c in cli.stored()[0]}
    assert cli.fails("alert", "channel", "delete", "orders", str(email)) == (
        f"Error: no alert channel {email} in project orders"
    )


def test_rule_create_list_update_delete(cli: Cli) -> None:
    rule = cli.created_id(
        "alert", "rule", "create", "orders", "Busy", "--trigger", "event_frequency", "--threshold", "50",
        "--window-minutes", "5", "--filter", "environment=production", "--tag", "tenant=acme",
        "--cooldown-minutes", "10", "--channel", "1",
    )  # fmt: skip
    (stored,) = [r for r in cli.stored()[1] if r["id"] == rule]
    assert stored["trigger"] == "event_frequency" and (stored["threshold"], stored["window_minutes"]) == (50, 5)
    assert stored["filters"] == {"environment": "production", "tags": {"tenant": "acme"}}
    assert stored["cooldown_minutes"] == 10 and stored["channels"] == [1] and stored["enabled"] is True
    listed = cli.ok("alert", "rule", "list", "orders").stdout
    assert "Busy" in listed and ">50/5min" in listed and "New issue" in listed and "Fatal in production" in listed

    cli.ok("alert", "rule", "update", "orders", str(rule), "--disable", "--threshold", "80", "--name", "Very busy")
    (stored,) = [r for r in cli.stored()[1] if r["id"] == rule]
    assert (stored["name"], stored["threshold"], stored["enabled"]) == ("Very busy", 80, False)
    assert stored["filters"] == {"environment": "production", "tags": {"tenant": "acme"}}  # untouched
    cli.ok("alert", "rule", "update", "orders", str(rule), "--clear-filters", "--filter", "level=error")
    (stored,) = [r for r in cli.stored()[1] if r["id"] == rule]
    assert stored["filters"] == {"level": "error"}

    assert cli.ok("alert", "rule", "delete", "orders", str(rule)).stdout.strip() == f"rule {rule} deleted"
    assert rule not in {r["id"] for r in cli.stored()[1]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("alert", "channel", "list", "nope"), "Error: no project 'nope'"),
        (("alert", "rule", "list", "nope"), "Error: no project 'nope'"),
        (
            ("alert", "channel", "create", "orders", "X", "--kind", "pager", "--config", "{}"),
            "Error: unknown channel kind 'pager'",
        ),
        (
            ("alert", "channel", "create", "orders", "X", "--kind", "email", "--config", '{"to": ["nobody"]}'),
            "nobody",
        ),
        (("alert", "rule", "create", "orders", "X", "--trigger", "often", "--channel", "1"), "trigger must be one of"),
        (
            ("alert", "rule", "create", "orders", "X", "--trigger", "event_frequency", "--channel", "1"),
            "needs threshold",
        ),
        (
            ("alert", "rule", "create", "orders", "X", "--trigger", "level", "--level", "loud", "--channel", "1"),
            "level must be one of",
        ),
        (
            (
                "alert",
                "rule",
                "create",
                "orders",
                "X",
                "--trigger",
                "new_issue",
                "--filter",
                "host=a",
                "--channel",
                "1",
            ),
            "filters may only hold",
        ),
        (("alert", "rule", "create", "orders", "X", "--trigger", "new_issue"), "a rule needs channels"),
        (("alert", "rule", "create", "orders", "X", "--trigger", "new_issue", "--channel", "99"), "no channel 99"),
        (("alert", "rule", "update", "orders", "99", "--disable"), "Error: no alert rule 99 in project orders"),
        (("alert", "rule", "update", "orders", "1", "--trigger", "impact"), "needs threshold"),
        (("alert", "rule", "delete", "orders", "99"), "Error: no alert rule 99 in project orders"),
        (("alert", "channel", "test", "orders", "99"), "Error: no alert channel 99 in project orders"),
    ],
)
def test_errors_end_with_one_line_and_exit_1(cli: Cli, args: tuple[str, ...], message: str) -> None:
    assert message in cli.fails(*args)
    channels, rules = cli.stored()
    assert len(channels) == 1 and len(rules) == 3  # nothing stored, nothing changed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("alert", "channel", "create", "orders", "X", "--kind", "email", "--config", "{to}"), "not JSON"),
        (("alert", "channel", "create", "orders", "X", "--kind", "email", "--config", "[]"), "a JSON object"),
        (("alert", "rule", "create", "orders", "X", "--trigger", "new_issue", "--tag", "tenant"), "KEY=VALUE"),
        (("alert", "rule", "update", "orders", "1"), "nothing to change"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: tuple[str, ...], message: str) -> None:
    assert message in cli.fails(*args, code=2)


def test_channel_test_sends_a_signed_webhook(cli: Cli) -> None:
    with RecordingServer() as receiver:
        hook = webhook(cli, f"{receiver.url}/hook")
        result = cli.ok("alert", "channel", "test", "orders", str(hook))
        (request,) = receiver.wait_for(1)
    assert f"delivered through channel {hook}" in result.stdout
    assert request.headers["x-stackwatch-signature"] == sign(
        SECRET, request.headers["x-stackwatch-timestamp"], request.body
    )
    assert request.json()["notification"]["reason"] == "Test notification"
    assert request.json()["notification"]["url"] == "http://127.0.0.1:8000/projects/orders"


def test_channel_test_failures_exit_1_and_show_in_the_health(cli: Cli) -> None:
    with RecordingServer() as receiver:
        receiver.default = Answer(503, b"maintenance")
        hook = webhook(cli, f"{receiver.url}/hook")
        for _ in range(3):
            message = cli.fails("alert", "channel", "test", "orders", str(hook))
            assert message.startswith("Error: not delivered (transient error):") and "HTTP 503" in message
    (line,) = [line for line in cli.ok("alert", "channel", "list", "orders").stdout.splitlines() if "Hook" in line]
    assert "UNHEALTHY (3 failed in a row)" in line and "HTTP 503" in line


def test_channel_test_uses_the_smtp_settings_from_the_environment(cli: Cli) -> None:
    address = cli.created_id(
        "alert", "channel", "create", "orders", "Team", "--kind", "email", "--config", '{"to": ["team@example.com"]}'
    )
    message = cli.fails("alert", "channel", "test", "orders", str(address))
    assert "not delivered (permanent error)" in message and "STACKWATCH_SMTP_HOST" in message
    handler = RecordingHandler()
    with smtp_server(handler) as smtp:
        env = {
            "STACKWATCH_SMTP_HOST": "127.0.0.1",
            "STACKWATCH_SMTP_PORT": str(smtp.port),
            "STACKWATCH_SMTP_SECURITY": "none",
            "STACKWATCH_SMTP_FROM": "stackwatch@example.com",
        }
        cli.ok("alert", "channel", "test", "orders", str(address), env=env)
    (received,) = handler.received
    assert received.rcpt_tos == ["team@example.com"]
    assert "Test notification" in str(received.message["subject"])
    channels, _ = cli.stored()
    assert {c["id"]: c["consecutive_failures"] for c in channels}[address] == 0
