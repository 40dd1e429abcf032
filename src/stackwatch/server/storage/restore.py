"""Putting a backup (``storage/backup.py``) into a data directory (``stackwatch restore``).

Everything is checked before anything is touched: the manifest, every file's size and SHA-256, SQLite's
``integrity_check`` of both databases, and that this version knows the backup's schema revision (an older one is
migrated when the server starts; a newer one would be run by code that does not know its tables). The files are
then copied beside their destinations under temporary names and synced; only then are the installation's files
renamed aside (``NAME.replaced-STAMP``) and the new ones renamed into place. A failure before the last rename
undoes the renames, so the old installation is left as it was. The replaced files are kept, not deleted: they
are the installation as it was until someone has seen the restored one work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackwatch.server.storage import backup, db

__all__ = ["Backup", "RestoreError", "existing_install", "place", "read_backup"]

_SIDE_FILES = ("-wal", "-shm", "-journal")


class RestoreError(Exception):
    """The backup cannot be restored here; the message is one line."""


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.manifest["files"])


def read_backup(path: Path) -> Backup:
    """The backup in ``path``, checked whole; raise :class:`RestoreError` at the first thing wrong."""
    manifest_path = path / backup.MANIFEST
    if not path.is_dir():
        raise RestoreError(f"{path} is not a directory")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RestoreError(f"{path} has no {backup.MANIFEST}: not a Stackwatch backup, or an unfinished one") from None
    except (OSError, ValueError) as exc:
        raise RestoreError(f"{manifest_path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != backup.FORMAT:
        raise RestoreError(f"{manifest_path}: not a backup format this version reads (format {backup.FORMAT})")
    files = manifest.get("files")
    if not isinstance(files, list) or not any(entry.get("role") == "database" for entry in files):
        raise RestoreError(f"{manifest_path}: lists no database")
    for entry in files:
        _check_file(path, entry)
    _check_revision(manifest.get("schema_revision"))
    return Backup(path, manifest)


def _check_file(path: Path, entry: dict[str, Any]) -> None:
    name = str(entry.get("name", ""))
    allowed = (backup.DATABASE_FILE, backup.INBOX_FILE, *backup.STATE_FILES)
    if name not in allowed:  # also keeps a manifest from naming files outside the backup
        raise RestoreError(f"{path / backup.MANIFEST} lists an unknown file {name!r}")
    file = path / name
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise RestoreError(f"{file}: {exc.strerror}") from None
    if size != entry.get("size") or backup.file_digest(file) != entry.get("sha256"):
        raise RestoreError(f"{file} is not the file the manifest describes (changed or damaged since the backup)")
    if entry.get("role") in ("database", "inbox"):
        _check_integrity(file)


def _check_integrity(file: Path) -> None:
    # immutable=1: read without creating -wal, -shm or journal files in the backup, and without locks.
    uri = f"{file.resolve().as_uri()}?immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            result = [row[0] for row in connection.execute("PRAGMA integrity_check(5)")]
    except sqlite3.Error as exc:
        raise RestoreError(f"{file}: {exc}") from None
    if result != ["ok"]:
        raise RestoreError(f"{file} fails SQLite's integrity_check: {'; '.join(map(str, result))}")


def _check_revision(revision: object) -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(Path(db.__file__).parent / "migrations"))
    known = {script.revision for script in scripts.walk_revisions()}
    if revision not in known:
        raise RestoreError(
            f"the backup's schema revision {revision!r} is unknown to this version of Stackwatch "
            f"(newest: {scripts.get_current_head()}): restore it with the version that made it, or a newer one"
        )


def _destinations(data_dir: Path, database_url: str) -> dict[str, Path]:
    """Where each file of a backup goes, by its name in the backup."""
    database, inbox = db.sqlite_path(database_url), db.inbox_path(database_url)
    if database is None or inbox is None:
        raise RestoreError("a backup restores into a SQLite database file only")
    places = {backup.DATABASE_FILE: database, backup.INBOX_FILE: inbox}
    places.update({name: data_dir / name for name in backup.STATE_FILES})
    return places


def _installation(data_dir: Path, database_url: str) -> list[Path]:
    """Every file of the installation a restore replaces (the databases with their side files, the state)."""
    places = _destinations(data_dir, database_url)
    paths: list[Path] = []
    for name, place in places.items():
        paths.append(place)
        if name in (backup.DATABASE_FILE, backup.INBOX_FILE):
            paths += [place.with_name(place.name + suffix) for suffix in _SIDE_FILES]
    return [path for path in paths if path.exists()]


def existing_install(data_dir: Path, database_url: str) -> list[str]:
    """The names of the installation's files that exist (an empty database file, as a check leaves, is none)."""
    found = _installation(data_dir, database_url)
    database = db.sqlite_path(database_url)
    return [path.name for path in found if not (path == database and path.stat().st_size == 0)]


def place(found: Backup, data_dir: Path, database_url: str) -> list[Path]:
    """Replace the installation with the backup's files; the paths the replaced files were kept under."""
    places = _destinations(data_dir, database_url)
    for folder in {data_dir, *(places[entry["name"]].parent for entry in found.files)}:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    staged: list[tuple[Path, Path]] = []
    aside: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for entry in found.files:
            destination = places[entry["name"]]
            staging = destination.with_name(f".{destination.name}.restoring")
            _copy_synced(found.path / entry["name"], staging)
            staged.append((staging, destination))
        for old in _installation(data_dir, database_url):
            kept = old.with_name(f"{old.name}.replaced-{stamp}")
            old.rename(kept)
            aside.append((kept, old))
        for staging, destination in staged:
            staging.rename(destination)
            placed.append(destination)
        for folder in {destination.parent for _staging, destination in staged}:
            _sync_folder(folder)
    except OSError as exc:
        for path in placed:
            path.unlink(missing_ok=True)
        for kept, old in reversed(aside):
            kept.rename(old)
        for staging, _destination in staged:
            staging.unlink(missing_ok=True)
        raise RestoreError(f"restore failed, the installation is unchanged: {exc.strerror or exc}") from None
    return [kept for kept, _old in aside]


def _copy_synced(source: Path, copy: Path) -> None:
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as data:
        shutil.copyfileobj(data, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
