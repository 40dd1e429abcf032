"""A consistent copy of a SQLite installation while its server runs (``stackwatch backup``).

What a restore needs, and nothing else: the main database, the inbox file (envelopes accepted and not yet
digested), and the data directory's state — ``secret_key`` (without it the sealed inbox and quarantine bodies do
not open, sessions and event identities change), ``admin-password`` and the ``initialised`` marker. The demo's
SDK spool and the server's lock file are not the installation's data and stay out. A backup therefore holds
secrets: its folder is 0700 and its files 0600, as in the data directory.

Both files are copied with SQLite's online backup API, in steps, from connections that each hold one read
transaction for the whole copy. Without that, any write by the running server between two steps restarts the
copy from the first page, and an install that takes envelopes faster than a step takes never finishes its
backup (tests/test_backup.py shows it). In WAL mode the held snapshot blocks no writer: the server keeps
ingesting and digesting; only its checkpoints cannot pass the snapshot, so its ``-wal`` grows until the copy ends.

The two snapshots are started while this process holds the main database's write lock for a moment, which the
digest (and ``quarantine retry``) take for each of their transactions: the main database cannot move on between
the two, so every envelope is either digested in the copy of the main database or waiting in the copy of the
inbox (or both: the digest then skips it by its cursor, as after a crash; see ``inbox.py``). Ingest writes only
to the inbox file and is not held up.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackwatch import __version__
from stackwatch.server.storage import datadir, db
from stackwatch.server.storage.filemodes import private_file, tighten

__all__ = [
    "DATABASE_FILE",
    "FORMAT",
    "INBOX_FILE",
    "MANIFEST",
    "STATE_FILES",
    "BackupError",
    "Progress",
    "copy_database",
    "file_digest",
    "take_backup",
]

MANIFEST = "manifest.json"
FORMAT = 1
DATABASE_FILE = "database.sqlite3"
INBOX_FILE = "inbox.sqlite3"
STATE_FILES = ("secret_key", "admin-password", datadir.MARKER)
# 1,024 pages (4 MB at SQLite's default page size) a step: a progress line every few milliseconds of copying.
STEP_PAGES = 1024
_CURSOR = "inbox_cursor"  # inbox.py's row in digest_state
_BUSY_MS = 30_000  # as long as the server's own busy timeout: a digest batch ends well before

Progress = Callable[[str, int, int], None]  # (what, bytes copied, bytes in all) after each step


class BackupError(Exception):
    """The backup cannot be taken; the message is one line naming what and where."""


@dataclass(frozen=True, slots=True)
class _Source:
    role: str  # "database" | "inbox"
    name: str  # its name in the backup
    path: Path


def key_fingerprint(secret_key: str) -> str:
    """A short hash that tells whether two secret keys are the same, and nothing else of the key."""
    return hashlib.sha256(b"stackwatch backup key\0" + secret_key.encode()).hexdigest()[:16]


def installed_key(data_dir: Path, configured: str) -> str | None:
    """The secret key the installation in ``data_dir`` runs with: the configured one, else its generated file."""
    if configured:
        return configured
    path = data_dir / "secret_key"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def take_backup(
    data_dir: Path,
    database_url: str,
    target: Path,
    *,
    progress: Progress,
    step_pages: int = STEP_PAGES,
    secret_key: str = "",
) -> dict[str, Any]:
    """Write a backup of the SQLite installation into ``target`` (created; refused when it is not empty).

    ``secret_key`` is the configured key (STACKWATCH_SECRET_KEY), if any: the manifest records a fingerprint of
    the key the installation uses, so that a restore can tell whether the waiting envelopes will open.
    """
    sources = _sources(database_url)
    created = _prepare(target)
    written: list[Path] = []
    try:
        with _snapshots(sources) as connections:
            for source, connection in zip(sources, connections, strict=True):
                copy = target / source.name
                written.append(copy)
                copy_database(connection, copy, step_pages=step_pages, progress=_named(progress, source.role))
        _finish_copies(target, sources)
        for name in STATE_FILES:
            if (data_dir / name).is_file():
                written.append(target / name)
                _copy_private(data_dir / name, target / name)
        manifest = _manifest(target, sources, data_dir, database_url)
        key = installed_key(data_dir, secret_key)
        manifest["secret_key_fingerprint"] = key_fingerprint(key) if key else None
        written.append(target / MANIFEST)
        _write_private(target / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        return manifest
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                target.rmdir()
        raise


def copy_database(
    source: sqlite3.Connection, copy: Path, *, step_pages: int = STEP_PAGES, progress: Progress | None = None
) -> None:
    """Copy the database of ``source`` (a connection in a read transaction) into a new file ``copy``.

    The copy is put in rollback-journal mode, so that it is one self-contained file; a server opening it after
    a restore sets WAL again.
    """
    page_size = int(source.execute("PRAGMA page_size").fetchone()[0])

    def step(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress("", (total - remaining) * page_size, total * page_size)

    private_file(copy)
    target = sqlite3.connect(copy, isolation_level=None)
    try:
        source.backup(target, pages=step_pages, progress=step, sleep=0)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()


def _sources(database_url: str) -> list[_Source]:
    database, inbox = db.sqlite_path(database_url), db.inbox_path(database_url)
    if database is None or inbox is None:
        raise BackupError("only a SQLite database file can be backed up this way")
    if not database.is_file() or database.stat().st_size == 0:
        raise BackupError(f"there is no database at {database} to back up (check STACKWATCH_DATA_DIR)")
    sources = [_Source("database", DATABASE_FILE, database)]
    if inbox.is_file():  # missing only before the first start of a server
        sources.insert(0, _Source("inbox", INBOX_FILE, inbox))
    return sources


def _prepare(target: Path) -> bool:
    """Create ``target`` private (or check an existing one is an empty folder); whether it was created."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise BackupError(f"{target} exists and is not a directory")
    if target.is_dir():
        if any(target.iterdir()):
            raise BackupError(f"{target} is not empty: give a new or empty directory")
        tighten(target)  # it will hold the secret key and sealed envelopes
        return False
    try:
        target.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise BackupError(f"cannot create {target}: {exc.strerror}") from None
    return True


@contextlib.contextmanager
def _snapshots(sources: list[_Source]) -> Iterator[list[sqlite3.Connection]]:
    """A connection to each source, each in a read transaction begun while the main database was held still."""
    connections = [sqlite3.connect(source.path, isolation_level=None, timeout=_BUSY_MS / 1000) for source in sources]
    try:
        database = next(source.path for source in sources if source.role == "database")
        holder = sqlite3.connect(database, isolation_level=None, timeout=_BUSY_MS / 1000)
        try:
            holder.execute("BEGIN IMMEDIATE")  # waits for a digest batch in progress, then holds the next one
            for connection in connections:
                connection.execute("BEGIN")
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
        finally:
            holder.close()  # rolls back: the digest goes on
        yield connections
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database: {exc}") from None
    finally:
        for connection in connections:
            connection.close()


def _named(progress: Progress, role: str) -> Progress:
    return lambda _what, done, total: progress(role, done, total)


def _finish_copies(target: Path, sources: list[_Source]) -> None:
    """Raise the copied inbox's id sequence to the digest's cursor, and check both copies."""
    with contextlib.closing(sqlite3.connect(target / DATABASE_FILE, isolation_level=None)) as main:
        row = main.execute("SELECT value FROM digest_state WHERE name = ?", (_CURSOR,)).fetchone()
        cursor = int(row[0]) if row else 0
    if any(source.role == "inbox" for source in sources):
        with contextlib.closing(sqlite3.connect(target / INBOX_FILE, isolation_level=None)) as inbox:
            # New envelopes after a restore must get ids above what the digest has stored (inbox.py's cursor).
            # The snapshots make that so already; this keeps it so for an inbox whose file was once lost.
            inbox.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'inbox' AND seq < ?", (cursor, cursor))
    for source in sources:
        with contextlib.closing(sqlite3.connect(target / source.name, isolation_level=None)) as copy:
            result = copy.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"the copy of the {source.role} does not pass SQLite's quick_check: {result}")


def _manifest(target: Path, sources: list[_Source], data_dir: Path, database_url: str) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(target / DATABASE_FILE, isolation_level=None)) as main:
        revision = main.execute("SELECT version_num FROM alembic_version").fetchone()
        cursor = main.execute("SELECT value FROM digest_state WHERE name = ?", (_CURSOR,)).fetchone()
    backlog = 0
    if any(source.role == "inbox" for source in sources):
        with contextlib.closing(sqlite3.connect(target / INBOX_FILE, isolation_level=None)) as inbox:
            query = "SELECT count(*) FROM inbox WHERE id > ?"
            backlog = int(inbox.execute(query, (int(cursor[0]) if cursor else 0,)).fetchone()[0])
    files = [{"name": source.name, "role": source.role} for source in sources]
    files += [{"name": name, "role": "state"} for name in STATE_FILES if (target / name).is_file()]
    for entry in files:
        entry.update(_describe(target / entry["name"]))
    return {
        "format": FORMAT,
        "stackwatch": __version__,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "schema_revision": revision[0] if revision else None,
        "source": {"data_dir": str(data_dir), "database": str(db.sqlite_path(database_url))},
        "inbox_backlog": backlog,
        "secret_key_included": (target / "secret_key").is_file(),
        "files": files,
    }


def _describe(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": file_digest(path)}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_private(source: Path, copy: Path) -> None:
    _write_private(copy, source.read_bytes())


def _write_private(path: Path, content: str | bytes) -> None:
    """Write ``path`` whole under a temporary name, 0600 from the start, and move it into place."""
    staged = path.with_name(f".{path.name}.partial")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content.encode() if isinstance(content, str) else content)
        handle.flush()
        os.fsync(handle.fileno())
    staged.replace(path)
