"""The data directory and Stackwatch's files in it are private to the user that runs the server.

They hold webhook secrets, Slack and Apprise URLs, password hashes, the secret key and (sealed) envelopes: the
directory is mode 0700 and every file 0600. SQLite creates a database's ``-wal`` and ``-shm`` files with the
mode of the database file, so a database file created private keeps all three private.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["private_file", "secure_data_dir", "tighten"]

log = logging.getLogger("stackwatch")

_OTHERS = 0o077  # group and other permission bits
_OWN_SUBDIRS = ("demo-spool",)  # folders Stackwatch makes in the data directory; their files are its own too


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist, else take away group and other bits."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        tighten(path)


def tighten(path: Path) -> bool:
    """Take away group and other bits of a file or folder that this user owns; whether anything changed."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or not info.st_mode & _OTHERS:
        return False
    os.chmod(path, stat.S_IMODE(info.st_mode) & ~_OTHERS)
    return True


def secure_data_dir(data_dir: Path) -> None:
    """At start: the data directory 0700 (made so, or tightened with a log line), its files 0600, umask 077.

    The umask covers every file the server and its child processes create from then on. A shared folder (one
    with the sticky bit, such as /tmp, or another user's) is left as it is, with a warning: its other contents
    are not Stackwatch's to change. A directory that cannot be made or changed is logged and left to the steps
    that need it to fail with their own messages.
    """
    os.umask(0o077)
    try:
        _secure(data_dir)
    except OSError as exc:
        log.error("data directory %s: cannot make it private: %s", data_dir, exc.strerror)


def _secure(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = data_dir.stat()
    if info.st_mode & stat.S_ISVTX or info.st_uid != os.getuid():
        log.warning(
            "data directory %s is shared (mode %o); use a directory of its own", data_dir, info.st_mode & 0o7777
        )
        return
    if tighten(data_dir):
        log.warning(
            "data directory %s was mode %o, readable by others; it is now %o",
            data_dir,
            stat.S_IMODE(info.st_mode),
            stat.S_IMODE(data_dir.stat().st_mode),
        )
    loose = [entry for entry in _own_entries(data_dir) if tighten(entry)]
    if loose:
        log.warning("%d files in the data directory were readable by others; they are now private", len(loose))


def _own_entries(data_dir: Path) -> list[Path]:
    entries = list(data_dir.iterdir())
    for name in _OWN_SUBDIRS:
        folder = data_dir / name
        if folder.is_dir() and not folder.is_symlink():
            entries += folder.rglob("*")
    return entries
