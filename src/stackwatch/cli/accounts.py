"""``stackwatch token`` and ``stackwatch user``: REST API tokens and dashboard accounts."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from stackwatch.cli.common import main, open_engine, settings_from, store_options, table, transaction
from stackwatch.server.storage import accounts
from stackwatch.server.storage.assignment import assignee_emails


@main.group()
def token() -> None:
    """Manage REST API tokens."""


@token.command("create")
@click.option("--name", default="api", show_default=True, help="What the token is for")
@click.option("--read-only", is_flag=True, help="The token may only read (GET), not change anything")
@click.option(
    "--user",
    "email",
    metavar="EMAIL",
    help="The user the token acts as (assigned:me, saved searches, who made a change); default: no user",
)
@store_options
def token_create(name: str, read_only: bool, email: str | None, **flags: Any) -> None:
    """Create an API token; prints it as the last line (it is shown only once)."""
    settings = settings_from(**flags)
    with transaction(settings) as connection:
        user_id = accounts.find_user(connection, email) if email is not None else None
        value = accounts.create_token(connection, name, user_id, scope="read" if read_only else "admin")
    kind = "read-only API token" if read_only else "API token"
    owner = f" of {email.strip().lower()}" if email is not None else ""
    click.echo(f"{kind} {name!r}{owner} created; use it as 'Authorization: Bearer <token>':")
    click.echo(value)


def _when(moment: float | None) -> str:
    if moment is None:
        return "never"
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _owner(emails: dict[int, str], user_id: int | None) -> str:
    """The token's user as listed: ``-`` for a token of no user (or of a user since deleted)."""
    return emails.get(user_id, "-") if user_id is not None else "-"


@token.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also the revoked tokens (kept as a record)")
@store_options
def token_list(show_all: bool, **flags: Any) -> None:
    """List API tokens, newest first (never the tokens themselves: only their hashes are stored)."""
    settings = settings_from(**flags)
    with open_engine(settings) as engine, engine.connect() as connection:
        tokens = accounts.list_tokens(connection, include_revoked=show_all)
        emails = assignee_emails(connection, {t.user_id for t in tokens if t.user_id is not None})
    header: tuple[str, ...] = ("ID", "NAME", "SCOPE", "USER", "CREATED", "LAST USED")
    rows: list[tuple[Any, ...]] = [
        (t.id, t.name, t.scope, _owner(emails, t.user_id), _when(t.created_at), _when(t.last_used_at)) for t in tokens
    ]
    if show_all:
        header += ("REVOKED",)
        rows = [(*row, _when(t.revoked_at) if t.revoked_at else "no") for row, t in zip(rows, tokens, strict=True)]
    table(header, rows)


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
@store_options
def token_revoke(token_id: int, **flags: Any) -> None:
    """Revoke an API token at once (its ID from 'stackwatch token list')."""
    settings = settings_from(**flags)
    with transaction(settings) as connection:
        revoked = accounts.revoke_token(connection, token_id)
    click.echo(f"API token {token_id} {'revoked' if revoked else 'was revoked already'}")


@main.group()
def user() -> None:
    """Manage dashboard users."""


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    raise click.ClickException("no terminal to ask for a password: pass it with --password-stdin")


@user.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the user an administrator")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@store_options
def user_create(email: str, admin: bool, password_stdin: bool, **flags: Any) -> None:
    """Create a dashboard user."""
    settings = settings_from(**flags)
    password = _password(password_stdin)
    with transaction(settings) as connection:
        accounts.create_user(connection, email, password, admin=admin)
    click.echo(f"user {email.strip().lower()} created{' (administrator)' if admin else ''}")


@user.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@store_options
def user_set_password(email: str, password_stdin: bool, **flags: Any) -> None:
    """Give a dashboard user a new password; every session they have ends."""
    settings = settings_from(**flags)
    password = _password(password_stdin)
    with transaction(settings) as connection:
        accounts.set_password(connection, accounts.find_user(connection, email), password)
    accounts.forget_admin_password(settings.data_dir, email)
    click.echo(f"password of {email.strip().lower()} changed; their dashboard sessions have ended")
