"""Whether a server is running on a data directory: a lock file that every ``stackwatch serve`` holds.

``stackwatch restore`` must not replace the files under a running server: its open connections would go on
writing into the unlinked old database, and its inbox writer would accept envelopes that vanish. A pid file
cannot say this reliably (a killed server leaves it, and the pid may belong to another process by then); an
``flock`` on ``serve.lock`` can, because the kernel drops it when the last process holding it ends, however it
ends. Every server process (and its digest child) holds a *shared* lock, so several processes of one
installation (``STACKWATCH_ROLE``) can run side by side; a restore takes the *exclusive* lock, which it gets
only when no server holds the shared one, and holds it while it replaces the files, so a server that starts
meanwhile refuses to.

``flock`` and not ``fcntl``/``lockf`` record locks: a record lock is the process's and vanishes when *any*
descriptor of the file is closed, an ``flock`` belongs to the open file description this module keeps open.
The file is never one of SQLite's (see ``datadir._write_refusal``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stackwatch.server.storage.datadir import DataDirError

__all__ = ["LOCK_FILE", "ServerRunning", "exclusive", "hold_shared"]

LOCK_FILE = "serve.lock"

# The descriptors of the shared locks this process holds, kept open (and so locked) until it exits.
_held: dict[Path, int] = {}


class ServerRunning(DataDirError):
    """A server holds the data directory (or a restore does, for a server that tries to start)."""


def _open(data_dir: Path) -> int:
    try:
        return os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DataDirError(f"STACKWATCH_DATA_DIR: cannot open {data_dir / LOCK_FILE}: {exc.strerror}") from None


def _try(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def hold_shared(data_dir: Path) -> None:
    """Mark this process as a server of ``data_dir`` until it exits; refuse while a restore replaces its files."""
    key = data_dir.resolve()
    if key in _held:
        return
    fd = _open(data_dir)
    if not _try(fd, fcntl.LOCK_SH):
        os.close(fd)
        raise ServerRunning(f"a restore into {data_dir} is in progress (stackwatch restore); start the server after it")
    _held[key] = fd


@contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` against servers for the block; refuse at once when one is running."""
    fd = _open(data_dir)
    try:
        if not _try(fd, fcntl.LOCK_EX):
            raise ServerRunning(
                f"a Stackwatch server is running on {data_dir} (it holds {data_dir / LOCK_FILE}): stop it first"
            )
        yield
    finally:
        os.close(fd)  # the last descriptor of this open file: the lock goes with it
