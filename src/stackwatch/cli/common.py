"""What every command shares: the database options, settings, the migrated database, table output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from stackwatch import __version__
from stackwatch.server.config import ConfigError, Settings, load_settings
from stackwatch.server.storage import accounts, db

__all__ = [
    "compact",
    "key_values",
    "main",
    "open_engine",
    "safe_url",
    "settings_from",
    "store_options",
    "table",
    "transaction",
]

F = TypeVar("F", bound=Callable[..., Any])


def store_options(command: F) -> F:
    command = click.option("--database-url", help="sqlite:///PATH or postgresql://… [STACKWATCH_DATABASE_URL]")(command)
    command = click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory [STACKWATCH_DATA_DIR]"
    )(command)
    return command


def settings_from(*, server: bool = False, **flags: Any) -> Settings:
    try:
        return load_settings(flags, server=server)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@contextmanager
def open_engine(settings: Settings) -> Iterator[Engine]:
    """The migrated database; its errors end the command with a one-line message."""
    try:
        engine = db.connect(settings.database_url, synchronous=settings.sqlite_synchronous, pool_size=1)
    except OSError as exc:  # the SQLite file's directory cannot be created (a file in the way, no permission)
        raise click.ClickException(f"database {safe_url(settings.database_url)}: {exc.strerror}") from None
    try:
        db.migrate(engine)
        yield engine
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    except OperationalError as exc:
        raise click.ClickException(f"database {safe_url(settings.database_url)}: {exc.orig}") from None
    finally:
        engine.dispose()


@contextmanager
def transaction(settings: Settings) -> Iterator[Connection]:
    """A write transaction on the migrated database."""
    with open_engine(settings) as engine, engine.connect() as connection:
        connection = connection.execution_options(sqlite_write=True)
        with connection.begin():
            yield connection


@click.group()
@click.version_option(__version__, prog_name="stackwatch")
def main() -> None:
    """Stackwatch: self-hosted, Sentry-compatible error tracking."""


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def key_values(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param=param)
        pairs[key.strip()] = value
    return pairs


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [header, *[tuple("-" if v is None else str(v) for v in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
