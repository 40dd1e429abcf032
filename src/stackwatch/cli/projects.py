"""``stackwatch project``: create projects, their privacy settings and members."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from stackwatch.cli.common import main, settings_from, store_options, transaction
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
@store_options
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
    settings = settings_from(**flags)
    with transaction(settings) as connection:
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
