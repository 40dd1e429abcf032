"""The spool: pending envelopes as files, one folder per DSN, written atomically and bounded in size.

Layout of a spool directory::

    <spool dir>/<first 16 hex digits of sha256(DSN)>/
        .dsn                                                 the DSN this folder sends to (secret key removed)
        .sender.lock                                         flock'ed by the one process that sends from here
        .tmp-<name>                                          an envelope being written (renamed when complete)
        01733912345678901234-4242-000017_error.envelope      pending envelopes

An envelope's file name is ``<time_ns, 20 digits>-<pid>-<sequence>_<categories>.envelope``: lexical order is
arrival order, and the data categories it holds (with their quantities, ``attachment=2048``) can be read without
opening the file, which is what the size bound's loss accounting and the rate-limit checks need.

Any number of processes may write into the same folder; the ``.sender.lock`` file (``fcntl.flock``) picks exactly
one of them to send. The lock belongs to an open file, so the kernel releases it when its holder dies, even by
``kill -9``.

:class:`MemorySpool` has the same interface and keeps envelopes in memory: the fallback when the directory cannot
be written. It loses everything in it when the process ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import heapq
import itertools
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ENVELOPE_SUFFIX",
    "DiskSpool",
    "MemorySpool",
    "Store",
    "decode_categories",
    "encode_categories",
    "folder_for",
]

ENVELOPE_SUFFIX = ".envelope"
TEMP_PREFIX = ".tmp-"
LOCK_NAME = ".sender.lock"
DSN_NAME = ".dsn"
# A temporary file this old was left by a writer that died mid-write; younger ones may still be in progress.
STALE_TEMP_SECONDS = 600.0
_CATEGORY_CHARS = re.compile(r"[^a-z0-9_]")


def folder_for(spool_dir: Path, dsn: str) -> Path:
    """The folder of ``spool_dir`` that holds the envelopes for ``dsn``."""
    return spool_dir / hashlib.sha256(dsn.encode()).hexdigest()[:16]


def encode_categories(pairs: Iterable[tuple[str, int]]) -> str:
    """``[("error", 1), ("attachment", 2048)]`` → ``"error+attachment=2048"`` (file-name safe, merged)."""
    merged: dict[str, int] = {}
    for category, quantity in pairs:
        name = _CATEGORY_CHARS.sub("", category.lower()) or "default"
        merged[name] = merged.get(name, 0) + quantity
    return "+".join(name if quantity == 1 else f"{name}={quantity}" for name, quantity in merged.items()) or "none"


def decode_categories(name: str) -> list[tuple[str, int]]:
    """The ``(category, quantity)`` pairs encoded in an envelope file's name."""
    stem = name.removesuffix(ENVELOPE_SUFFIX)
    _, _, encoded = stem.partition("_")
    pairs = []
    for part in encoded.split("+"):
        category, _, quantity = part.partition("=")
        if category and category != "none":
            pairs.append((category, int(quantity) if quantity.isdigit() else 1))
    return pairs


class Store(Protocol):
    """Where pending envelopes wait. Thread-safe; no method holds a lock while doing file or network I/O."""

    durable: bool
    max_bytes: int
    in_flight: str | None  # the name being sent right now: never evicted

    @property
    def total_bytes(self) -> int: ...

    def write(self, data: bytes, quantities: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        """Store an envelope; return the ``(category, quantity)`` pairs of what was evicted to make room."""
        ...

    def pending(self) -> list[str]:
        """Names of the stored envelopes, oldest first."""
        ...

    def read(self, name: str) -> bytes | None: ...

    def remove(self, name: str) -> None: ...

    def refresh(self) -> None:
        """Recount what is stored (other processes write and delete too)."""
        ...

    def try_lock(self) -> bool:
        """Become (or stay) the one sender of this store; False when another process is."""
        ...

    def unlock(self) -> None: ...

    def after_fork(self) -> None:
        """In a forked child: drop what belongs to the parent (the sender lock, thread locks)."""
        ...


class DiskSpool:
    """Envelopes as files in one folder. Construction fails with ``OSError`` when the folder is not writable."""

    durable = True

    def __init__(self, folder: Path, *, max_bytes: int, fsync: bool = False, dsn: str | None = None) -> None:
        self.folder = folder
        self._prefix = os.path.join(folder, "")  # string paths: pathlib costs more than the system calls here
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.in_flight: str | None = None
        self._seq = itertools.count()
        self._lock_fd: int | None = None
        self._reset_index()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._probe()
        if dsn is not None and not (folder / DSN_NAME).exists():
            self._write_atomically(DSN_NAME, (_without_secret(dsn) + "\n").encode())

    def _reset_index(self) -> None:
        # _sizes is the truth about what this process believes is stored; _heap orders its names for eviction
        # and may hold names already removed (skipped when popped, dropped when a refresh rebuilds it).
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self._heap: list[str] = []
        self._total = 0
        self._reserved = 0
        self._scanning = False
        self._added_in_scan: dict[str, int] = {}
        self._removed_in_scan: set[str] = set()

    def _probe(self) -> None:
        probe = self.folder / f"{TEMP_PREFIX}probe-{os.getpid()}-{threading.get_ident()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.close(fd)
        os.unlink(probe)

    @property
    def total_bytes(self) -> int:
        return self._total + self._reserved

    def write(self, data: bytes, quantities: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        size = len(data)
        if size > self.max_bytes:
            return list(quantities)  # could never fit: lost on arrival
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}_{encode_categories(quantities)}"
        name += ENVELOPE_SUFFIX
        lost = self._make_room(size)
        try:
            self._write_atomically(name, data)
        except BaseException:
            with self._lock:
                self._reserved -= size
            raise
        with self._lock:
            self._reserved -= size
            self._add(name, size)
        return lost

    def _write_atomically(self, name: str, data: bytes) -> None:
        temp = self._prefix + TEMP_PREFIX + name
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self._prefix + name)
        except BaseException:
            _unlink(temp)
            raise
        if self.fsync:
            _fsync_dir(self.folder)

    def _add(self, name: str, size: int) -> None:
        self._sizes[name] = size
        self._total += size
        heapq.heappush(self._heap, name)
        if self._scanning:
            self._added_in_scan[name] = size

    def _make_room(self, size: int) -> list[tuple[str, int]]:
        """Reserve ``size`` bytes, evicting the oldest envelopes as needed; return what the evicted ones held."""
        victims = []
        with self._lock:
            skipped = None
            while self._total + self._reserved + size > self.max_bytes and self._heap:
                name = heapq.heappop(self._heap)
                if name not in self._sizes:
                    continue
                if name == self.in_flight:
                    skipped = name
                    continue
                self._total -= self._sizes.pop(name)
                victims.append(name)
                if self._scanning:
                    self._removed_in_scan.add(name)
            if skipped is not None:
                heapq.heappush(self._heap, skipped)
            self._reserved += size
        lost: list[tuple[str, int]] = []
        for name in victims:
            try:
                os.unlink(self._prefix + name)
            except FileNotFoundError:
                continue  # delivered by another process since this one last looked: not lost
            lost.extend(decode_categories(name))
        return lost

    def pending(self) -> list[str]:
        names = [name for name in os.listdir(self.folder) if name.endswith(ENVELOPE_SUFFIX) and name[0] != "."]
        names.sort()
        return names

    def read(self, name: str) -> bytes | None:
        try:
            with open(self._prefix + name, "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None

    def remove(self, name: str) -> None:
        _unlink(self._prefix + name)
        with self._lock:
            size = self._sizes.pop(name, None)
            if size is not None:
                self._total -= size
            if self._scanning:
                self._removed_in_scan.add(name)
            # The sender removes oldest first, so this usually pops exactly the name just removed.
            while self._heap and self._heap[0] not in self._sizes:
                heapq.heappop(self._heap)

    def refresh(self) -> None:
        with self._lock:
            self._scanning = True
            self._added_in_scan, self._removed_in_scan = {}, set()
        try:
            found = self._scan()
        except BaseException:
            with self._lock:
                self._scanning = False
            raise
        heap = sorted(found)  # a sorted list is a heap
        total = sum(found.values())
        with self._lock:
            self._scanning = False
            for name, size in self._added_in_scan.items():
                if name not in found:
                    found[name] = size
                    total += size
                    heapq.heappush(heap, name)
            for name in self._removed_in_scan:
                total -= found.pop(name, 0)
            self._sizes, self._heap, self._total = found, heap, total

    def _scan(self) -> dict[str, int]:
        found: dict[str, int] = {}
        now = time.time()
        with os.scandir(self.folder) as entries:
            for count, entry in enumerate(entries, 1):
                if count % 256 == 0:
                    time.sleep(0)  # a long scan must not keep a capturing thread waiting for the GIL
                try:
                    if entry.name.endswith(ENVELOPE_SUFFIX) and entry.name[0] != ".":
                        found[entry.name] = entry.stat().st_size
                    elif entry.name.startswith(TEMP_PREFIX) and now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                        _unlink(entry.path)
                except FileNotFoundError:
                    continue
        return found

    def try_lock(self) -> bool:
        if self._lock_fd is not None:
            return True
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor of the open file releases the flock

    def after_fork(self) -> None:
        # The child's copy of the descriptor shares the parent's lock: closing it (never LOCK_UN, which would
        # release the parent's lock too) leaves the parent the sender.
        self.unlock()
        with_sizes = dict(self._sizes)
        self._reset_index()
        self._sizes = with_sizes
        self._heap = sorted(with_sizes)
        self._total = sum(with_sizes.values())
        self.in_flight = None


class MemorySpool:
    """The fallback store: envelopes in memory, oldest evicted first. Not durable."""

    durable = False

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.in_flight: str | None = None
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._total = 0
        self._seq = itertools.count()

    @property
    def total_bytes(self) -> int:
        return self._total

    def write(self, data: bytes, quantities: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        if len(data) > self.max_bytes:
            return list(quantities)
        name = f"{next(self._seq):012d}_{encode_categories(quantities)}{ENVELOPE_SUFFIX}"
        lost: list[tuple[str, int]] = []
        with self._lock:
            for victim in list(self._items):
                if self._total + len(data) <= self.max_bytes:
                    break
                if victim != self.in_flight:
                    self._total -= len(self._items.pop(victim))
                    lost.extend(decode_categories(victim))
            self._items[name] = data
            self._total += len(data)
        return lost

    def pending(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def read(self, name: str) -> bytes | None:
        return self._items.get(name)

    def remove(self, name: str) -> None:
        with self._lock:
            data = self._items.pop(name, None)
            if data is not None:
                self._total -= len(data)

    def refresh(self) -> None:
        return None

    def try_lock(self) -> bool:
        return True

    def unlock(self) -> None:
        return None

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _without_secret(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
