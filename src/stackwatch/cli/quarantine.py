"""``stackwatch quarantine``: see, retry and delete the envelopes the digest could not store.

The bodies stay sealed throughout (``server/storage/quarantine.py``): these commands need no secret key and
never show an envelope's contents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from stackwatch.cli.common import main, open_engine, settings_from, store_options, table
from stackwatch.server.config import Settings
from stackwatch.server.storage import quarantine as store
from stackwatch.server.storage.inbox import open_inbox

_ERROR_WIDTH = 100


@main.group()
def quarantine() -> None:
    """Envelopes the digest could not store (kept sealed; deleted after STACKWATCH_QUARANTINE_DAYS)."""


@quarantine.command("list")
@store_options
def quarantine_list(**flags: Any) -> None:
    """List quarantined envelopes: id, project, when received and quarantined, size, error (never the payload)."""
    settings = settings_from(**flags)
    with open_engine(settings) as engine, engine.connect() as connection:
        entries = store.entries(connection)
    if not entries:
        click.echo("the quarantine is empty")
        return
    table(
        ("ID", "PROJECT", "RECEIVED", "QUARANTINED", "SIZE", "ERROR"),
        [
            (e.id, e.project, _when(e.received_at), _when(e.quarantined_at), _size(e.size), _line(e.error))
            for e in entries
        ],
    )


@quarantine.command("retry")
@click.argument("ids", metavar="ID...", nargs=-1, type=click.IntRange(1))
@click.option("--all", "every", is_flag=True, help="Every quarantined envelope")
@store_options
def quarantine_retry(ids: tuple[int, ...], every: bool, **flags: Any) -> None:
    """Put envelopes back into the inbox; a running digest takes them again within seconds."""
    settings = settings_from(**flags)
    count = _apply(settings, _which(ids, every), retry=True)
    click.echo(f"{_envelopes(count)} back in the inbox for the digest")


@quarantine.command("purge")
@click.argument("ids", metavar="ID...", nargs=-1, type=click.IntRange(1))
@click.option("--all", "every", is_flag=True, help="Every quarantined envelope")
@store_options
def quarantine_purge(ids: tuple[int, ...], every: bool, **flags: Any) -> None:
    """Delete quarantined envelopes for good."""
    settings = settings_from(**flags)
    count = _apply(settings, _which(ids, every), retry=False)
    click.echo(f"{_envelopes(count)} deleted")


def _which(ids: tuple[int, ...], every: bool) -> list[int] | None:
    if every and ids:
        raise click.UsageError("give envelope ids or --all, not both")
    if not every and not ids:
        raise click.UsageError("give the ids of envelopes (see: stackwatch quarantine list) or --all")
    return None if every else sorted(set(ids))


def _apply(settings: Settings, ids: list[int] | None, *, retry: bool) -> int:
    with open_engine(settings) as engine:
        inbox = open_inbox(engine, settings.database_url, synchronous=settings.sqlite_synchronous)
        try:
            with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
                if retry:
                    return store.retry(connection, inbox, ids)
                return store.purge(connection, ids)
        except store.QuarantineError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            inbox.close()


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _size(size: int) -> str:
    for unit, scale in (("MB", 1 << 20), ("kB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _line(error: str) -> str:
    line = " ".join(error.split())
    return line if len(line) <= _ERROR_WIDTH else line[: _ERROR_WIDTH - 1] + "…"


def _envelopes(count: int) -> str:
    return f"{count} envelope{'' if count == 1 else 's'}"
