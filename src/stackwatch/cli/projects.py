"""``stackwatch project``: create projects, their privacy settings and members."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from stackwatch.cli.common import main, settings_from, store_options, transaction
from stackwatch.server.retention import Limits
from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import projects


@main.group()
def project() -> None:
    """Manage projects."""


@project.command("create")
@click.argument("name")
@store_options
def project_create(name: str, **flags: Any) -> None:
    """Create a project; prints its DSN as the last line."""
    settings = settings_from(**flags)
    with transaction(settings) as connection:
        info = accounts.create_project(connection, name)
    click.echo(f"project {info.slug} (id {info.id}) created; its DSN:")
    click.echo(accounts.dsn(settings.base_url, info.public_key, info.id))


@project.command("update")
@click.argument("slug")
@click.option("--scrub-emails/--no-scrub-emails", default=None, help="Redact email addresses in new events")
@click.option("--scrub-ips/--no-scrub-ips", default=None, help="Redact IP addresses in new events")
@click.option("--collect-ips/--no-collect-ips", default=None, help="Fill in the sender's IP for user {{auto}}")
@click.option(
    "--retention-days",
    metavar="N|default",
    help="Days events are kept (1-36500); 'default' for STACKWATCH_RETENTION_DAYS",
)
@click.option(
    "--max-events",
    metavar="N|default",
    help="Events stored at most (0: no count limit); 'default' for STACKWATCH_RETENTION_MAX_EVENTS",
)
@store_options
def project_update(
    slug: str,
    scrub_emails: bool | None,
    scrub_ips: bool | None,
    collect_ips: bool | None,
    retention_days: str | None,
    max_events: str | None,
    **flags: Any,
) -> None:
    """Change a project's privacy settings (they apply to events digested from then on) and retention limits
    (from the worker's next pass)."""
    changes: dict[str, bool | int | None] = {
        name: value
        for name, value in (("scrub_emails", scrub_emails), ("scrub_ips", scrub_ips), ("collect_ips", collect_ips))
        if value is not None
    }
    for name, text in (("retention_days", retention_days), ("max_events", max_events)):
        if text is not None:
            changes[name] = _limit(name, text)
    if not changes:
        raise click.UsageError(
            "nothing to change: give --scrub-emails, --scrub-ips, --collect-ips (or --no-…), --retention-days "
            "or --max-events"
        )
    settings = settings_from(**flags)
    with transaction(settings) as connection:
        try:
            found = accounts.update_project(connection, slug, **changes)
        except accounts.AccountError as error:
            raise click.UsageError(str(error)) from None
        if not found:
            raise click.ClickException(f"no project {slug!r}")
        row = connection.execute(select(projects).where(projects.c.slug == slug)).one()
    limits = Limits(settings.retention_days, settings.retention_max_events).of(row.retention_days, row.max_events)
    days, cap = limits.days, limits.max_events
    click.echo(
        f"project {slug}: scrub_emails={_on(row.scrub_emails)} scrub_ips={_on(row.scrub_ips)} "
        f"collect_ips={_on(row.collect_ips)} retention_days={days}{'' if row.retention_days else ' (default)'} "
        f"max_events={cap or 'unlimited'}{'' if row.max_events is not None else ' (default)'}"
    )


def _limit(name: str, text: str) -> int | None:
    if text.strip().lower() == "default":
        return None
    try:
        return int(text)
    except ValueError:
        option = "--" + name.replace("_", "-")
        raise click.UsageError(f"{option}: expected an integer or 'default', got {text!r}") from None


@project.command("add-member")
@click.argument("slug")
@click.argument("email")
@store_options
def project_add_member(slug: str, email: str, **flags: Any) -> None:
    """Let a user see the project on the dashboard (administrators see every project)."""
    settings = settings_from(**flags)
    with transaction(settings) as connection:
        added = accounts.add_member(connection, slug, email)
    click.echo(f"{email.strip().lower()} {'is now' if added else 'was already'} a member of {slug}")


@project.command("remove-member")
@click.argument("slug")
@click.argument("email")
@store_options
def project_remove_member(slug: str, email: str, **flags: Any) -> None:
    """Take a user's access to the project away."""
    settings = settings_from(**flags)
    with transaction(settings) as connection:
        removed = accounts.remove_member(connection, slug, email)
    click.echo(f"{email.strip().lower()} {'is no longer' if removed else 'was not'} a member of {slug}")


def _on(value: bool) -> str:
    return "on" if value else "off"
