"""``stackwatch backup`` and ``stackwatch restore``: a SQLite installation copied while it runs, and put back.

The work is in ``server/storage/backup.py`` and ``restore.py``; here are the messages. On PostgreSQL both
commands say how to do it with PostgreSQL's tools instead, and end with a non-zero exit: nothing was backed up.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from stackwatch.cli.common import configuration, main, safe_url, store_options
from stackwatch.server.config import Settings
from stackwatch.server.storage import backup as store
from stackwatch.server.storage import datadir, running
from stackwatch.server.storage import restore as restoring

_MB = 1 << 20
_LINE_EVERY = 1.0  # seconds between progress lines when stderr is not a terminal


def _postgres(settings: Settings, command: str) -> click.ClickException:
    url = safe_url(settings.database_url)
    how = {
        "backup": f"pg_dump --format=custom --file=PATH/stackwatch.dump '{url}'",
        "restore": f"pg_restore --clean --if-exists --no-owner --dbname='{url}' PATH/stackwatch.dump",
    }[command]
    return click.ClickException(
        f"the database is PostgreSQL, whose own tools do this: every Stackwatch table, the inbox of envelopes not "
        f"yet digested included, is in that one database. Run:  {how}  and keep STACKWATCH_SECRET_KEY with the "
        f"dump (the inbox's and the quarantine's envelopes are sealed under it); see docs/operations.md, Backups"
    )


class _Progress:
    """``backup: database 42% (12.3 of 29.1 MB)`` on stderr: rewritten in place on a terminal, else a line a second."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if not finished and now - self._last < (0.1 if self._tty else _LINE_EVERY):
            return
        self._last = now
        percent = 100 if finished else int(done * 100 / max(total, 1))
        line = f"backup: {what} {percent}% ({done / _MB:.1f} of {total / _MB:.1f} MB)"
        if self._tty:
            click.echo(f"\r{line}\033[K", err=True, nl=finished)
        else:
            click.echo(line, err=True)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@store_options
def backup(path: Path, **flags: Any) -> None:
    """Copy the running installation into the new directory PATH (SQLite; see docs/operations.md)."""
    settings = configuration(**flags)
    if not settings.is_sqlite:
        raise _postgres(settings, "backup")
    try:
        manifest = store.take_backup(
            settings.data_dir, settings.database_url, path, progress=_Progress(), secret_key=settings.secret_key
        )
    except store.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    files = ", ".join(f"{entry['name']} ({_size(entry['size'])})" for entry in manifest["files"])
    click.echo(f"backup of {settings.data_dir} written to {path}: {files}")
    click.echo(
        f"schema revision {manifest['schema_revision']}, {manifest['inbox_backlog']} envelopes waiting in the inbox"
    )
    if not manifest["secret_key_included"]:
        click.echo(
            "note: the secret key is not in the data directory (STACKWATCH_SECRET_KEY or _FILE sets it): keep it "
            "with this backup; the envelopes in its inbox and quarantine open only with that key",
            err=True,
        )


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing installation (never while a server runs on it)")
@click.option(
    "--other-key",
    is_flag=True,
    help="Restore although the secret key in use is not the backup's (its waiting envelopes go to the quarantine)",
)
@store_options
def restore(path: Path, force: bool, other_key: bool, **flags: Any) -> None:
    """Put the backup in PATH into the configured data directory; no server may be running on it."""
    settings = configuration(**flags)
    if not settings.is_sqlite:
        raise _postgres(settings, "restore")
    data_dir = settings.data_dir
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with running.exclusive(data_dir):  # held until the files are in place: a server cannot start meanwhile
            found = restoring.read_backup(path)
            mismatch = _key_mismatch(found, path, settings.secret_key)
            if mismatch and found.manifest.get("inbox_backlog") and not other_key:
                raise click.ClickException(
                    f"{mismatch}: the {found.manifest['inbox_backlog']} envelopes waiting in its inbox would not "
                    "open; set the key it was taken with, or pass --other-key to restore anyway (they then go to "
                    "the quarantine, where `stackwatch quarantine retry` opens them once the old key is back)"
                )
            existing = restoring.existing_install(data_dir, settings.database_url)
            if existing and not force:
                raise click.ClickException(
                    f"{data_dir} holds an installation ({', '.join(existing)}): pass --force to replace it "
                    f"(its files are then kept beside the new ones as NAME.replaced-TIME)"
                )
            kept = restoring.place(found, data_dir, settings.database_url)
    except OSError as exc:
        raise click.ClickException(f"STACKWATCH_DATA_DIR: cannot use {data_dir}: {exc.strerror}") from None
    except (datadir.DataDirError, restoring.RestoreError) as exc:
        raise click.ClickException(str(exc)) from None
    manifest = found.manifest
    click.echo(f"restored the backup of {manifest['created_at']} into {data_dir}")
    if mismatch:
        click.echo(f"note: {mismatch}: sessions and sealed data of the backup's key do not carry over", err=True)
    if kept:
        click.echo(f"the replaced files are kept as {', '.join(p.name for p in kept)}: delete them once it works")
    if not manifest.get("secret_key_included"):
        click.echo(
            "note: the backup holds no secret key: run the server with the STACKWATCH_SECRET_KEY it had, or the "
            "envelopes in its inbox and quarantine do not open",
            err=True,
        )
    click.echo(f"start the server (stackwatch serve); it digests the {manifest['inbox_backlog']} waiting envelopes")


def _key_mismatch(found: restoring.Backup, path: Path, configured: str) -> str | None:
    """Why the restored installation will not run with the key the backup was taken with; None when it will, or
    when that cannot be known (a backup of an older version records no key)."""
    recorded = found.manifest.get("secret_key_fingerprint")
    key = store.installed_key(path, configured)  # the configured key, else the backup's own secret_key file
    if not recorded or key is None or store.key_fingerprint(key) == recorded:
        return None
    where = "STACKWATCH_SECRET_KEY" if configured else "the backup's secret_key file"
    return f"the secret key in use ({where}) is not the one the backup was taken with"


def _size(size: int) -> str:
    return f"{size / _MB:.1f} MB" if size >= _MB else f"{size / 1024:.1f} kB" if size >= 1024 else f"{size} B"
