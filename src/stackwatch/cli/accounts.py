"""``stackwatch token`` and ``stackwatch user``: REST API tokens and dashboard accounts."""

from __future__ import annotations

import sys
from typing import Any

import click

from stackwatch.cli.common import main, settings_from, store_options, transaction
from stackwatch.server.storage import accounts


@main.group()
def token() -> None:
    """Manage REST API tokens."""


@token.command("create")
@click.option("--name", default="api", show_default=True, help="What the token is for")
@store_options
def token_create(name: str, **flags: Any) -> None:
    """Create an API token; prints it as the last line (it is shown only once)."""
    settings = settings_from(**flags)
    with transaction(settings) as connection:
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
@store_options
def user_create(email: str, admin: bool, password_stdin: bool, **flags: Any) -> None:
    """Create a dashboard user."""
    settings = settings_from(**flags)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.ClickException("no terminal to ask for a password: pass it with --password-stdin")
    with transaction(settings) as connection:
        accounts.create_user(connection, email, password, admin=admin)
    click.echo(f"user {email.strip().lower()} created{' (administrator)' if admin else ''}")
