"""The data directory and the SQLite files, checked before a command writes to them.

A read-only disk, a file that cannot be opened or a database that has gone missing must end a command with one
line that names the path, not start a server that answers 503 to every SDK. And a data directory that still holds
what an earlier installation left (its secret key, its inbox, its administrator's password) but no longer its
database is a database that was lost or moved: creating a new one there would give every SDK a DSN key that no
longer exists, so it is done only when asked for (``--init``).
"""

from __future__ import annotations

import datetime
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url

from stackwatch.server.storage import db

__all__ = [
    "MARKER",
    "DataDirError",
    "check_database_present",
    "check_initialised",
    "check_writable",
    "mark_initialised",
    "one_line",
    "sqlite_files",
    "unwritable",
]

# Written once a database is migrated: it says "this directory belongs to an initialised installation" for the
# backends whose database lives elsewhere (PostgreSQL), where no other file would say so.
MARKER = "initialised"
# What a run of Stackwatch leaves in its data directory (besides the SQLite files themselves).
STATE = ("secret_key", "admin-password", MARKER, "demo-spool")
_SIDE_FILES = ("-wal", "-shm", "-journal")


class DataDirError(Exception):
    """The data directory or a database file cannot be used; the message is one line naming it."""


def sqlite_files(database_url: str) -> Iterator[tuple[str, Path]]:
    """``("database" | "inbox", path)`` of every SQLite file the server writes, with their WAL side files."""
    for what, path in (("database", db.sqlite_path(database_url)), ("inbox", db.inbox_path(database_url))):
        if path is not None:
            yield what, path
            for suffix in _SIDE_FILES:
                yield what, path.with_name(path.name + suffix)


def unwritable(database_url: str) -> list[str]:
    """The SQLite files that exist and cannot be written, as ``"inbox: <reason>"`` (cheap: no write, no open)."""
    return [f"{what}: {path.name} cannot be written ({_reason(exc)})" for what, path, exc in _refusing(database_url)]


def _refusing(database_url: str) -> Iterator[tuple[str, Path, OSError]]:
    for what, path in sqlite_files(database_url):
        refusal = _write_refusal(path)
        if refusal is not None:
            yield what, path, refusal


def _write_refusal(path: Path) -> OSError | None:
    """Why ``path`` cannot be written, or ``None`` (also when it does not exist), without opening it.

    Never open and close a SQLite file here: POSIX advisory locks belong to the process, and closing *any*
    descriptor of a file drops every lock the process holds on it, so SQLite's own locks on the database, its
    ``-wal`` or ``-shm`` vanish while its connections go on writing, and a writer in another process corrupts the
    file (https://www.sqlite.org/howtocorrupt.html, 2.2). ``/readyz`` runs this while the server writes.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc
    if stat.S_ISDIR(info.st_mode):
        return IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    if os.access(path, os.W_OK):  # the kernel's own answer: modes, read-only mounts, the immutable flag
        return None
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    # Root is refused only by a read-only mount or a flag such as immutable, which the kernel reports as EPERM.
    code = errno.EROFS if read_only else errno.EPERM if os.geteuid() == 0 else errno.EACCES
    return OSError(code, os.strerror(code))


def check_writable(data_dir: Path, database_url: str, *, data_dir_needed: bool = True) -> None:
    """Create the folders if need be and write a file into each; check every existing SQLite file is writable.

    ``data_dir_needed=False`` (administrative commands on PostgreSQL) leaves a data directory that does not exist
    alone: those commands write nothing there.
    """
    folders: list[tuple[str, Path]] = []
    if data_dir_needed or data_dir.exists():
        folders.append(("STACKWATCH_DATA_DIR", data_dir))
    database = db.sqlite_path(database_url)
    if database is not None and database.parent != data_dir:
        folders.append(("STACKWATCH_DATABASE_URL", database.parent))
    for source, folder in folders:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _probe(folder)
        except OSError as exc:
            raise DataDirError(f"{source}: cannot write to {folder}: {_reason(exc)}") from None
    refused = next(_refusing(database_url), None)
    if refused is not None:
        what, path, error = refused
        raise DataDirError(f"the {what} file {path} cannot be opened for writing: {_reason(error)}")


def check_database_present(data_dir: Path, database_url: str, *, init: bool) -> None:
    """On SQLite: refuse a missing database beside the state of an earlier one, unless ``init``.

    Run before anything else is written, so that the files this command is about to create (the secret key)
    are not taken for an earlier installation's. A new database file is created here at once: a second
    process starting at the same moment then finds the database, not a secret key without one.
    """
    path = db.sqlite_path(database_url)
    if path is None or path.exists():
        return
    left = _leftovers(data_dir, database_url)
    if left and not init:
        raise DataDirError(
            f"the database {path} is missing, but {_where(data_dir, path)} holds an earlier installation's "
            f"{', '.join(left)}: restore the database, or create a new, empty one deliberately with "
            f"`stackwatch serve --init` (or `stackwatch migrate --init`), or move {data_dir} away"
        )
    try:
        for suffix in _SIDE_FILES:  # a write-ahead log of the lost database would be replayed into the new one
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.rename(side.with_name(side.name + ".orphaned"))
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
    except OSError as exc:
        raise DataDirError(f"STACKWATCH_DATABASE_URL: cannot create {path}: {_reason(exc)}") from None


def check_initialised(connection: Connection, data_dir: Path, database_url: str, *, init: bool) -> None:
    """Refuse a database without Stackwatch's tables when the data directory says it had them, unless ``init``."""
    marker = data_dir / MARKER
    if init or not marker.exists() or inspect(connection).has_table("alembic_version"):
        return
    url = make_url(database_url).render_as_string(hide_password=True)
    raise DataDirError(
        f"the database {url} has no Stackwatch tables, but {marker} says it was initialised: point "
        f"STACKWATCH_DATABASE_URL at the right database or restore it, or create the tables deliberately with "
        f"`stackwatch migrate --init` or `stackwatch serve --init`"
    )


def mark_initialised(data_dir: Path, database_url: str) -> None:
    """Leave the marker in a data directory that exists (an administrative command on PostgreSQL creates none)."""
    marker = data_dir / MARKER
    if marker.exists() or not data_dir.is_dir():
        return
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    url = make_url(database_url).render_as_string(hide_password=True)
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private like every file here
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{stamp} Stackwatch found the database {url} initialised (see docs/operations.md)\n")
    except FileExistsError:
        pass  # another process starting at the same moment wrote it
    except OSError as exc:
        raise DataDirError(f"STACKWATCH_DATA_DIR: cannot write {marker}: {_reason(exc)}") from None


def one_line(exc: BaseException) -> str:
    """A database error as one line: the driver's message (psycopg's spans several), without SQLAlchemy's notes."""
    message = str(getattr(exc, "orig", None) or exc)
    return "; ".join(line.strip() for line in message.splitlines() if line.strip()) or type(exc).__name__


def _leftovers(data_dir: Path, database_url: str) -> list[str]:
    """The names of what an earlier run left: state files, the inbox, the lost database's own side files."""
    found = [name for name in STATE if (data_dir / name).exists()]
    for main in (db.sqlite_path(database_url), db.inbox_path(database_url)):
        if main is None:
            continue
        if main.exists():
            found.append(main.name)  # its side files go without saying
            continue
        found += [main.name + suffix for suffix in _SIDE_FILES if main.with_name(main.name + suffix).exists()]
    return found


def _where(data_dir: Path, database: Path) -> str:
    return str(data_dir) if database.parent == data_dir else f"{data_dir} (and {database.parent})"


def _probe(folder: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=".stackwatch-write-test-", dir=folder)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
        os.unlink(name)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
