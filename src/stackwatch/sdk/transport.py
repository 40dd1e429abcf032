"""``SpoolTransport``: a sentry-sdk transport that writes every envelope to disk first and sends from there.

sentry-sdk's own transport keeps up to 100 envelopes in memory and drops the rest when the server is away; a
crash loses whatever is queued. This one puts each envelope in the spool (see :mod:`stackwatch.sdk.spool`)
before ``capture_envelope`` returns, and a background thread sends the spool's files oldest first, deleting each
only once the server has accepted it (or can never accept it). The calling thread never touches the network and
never waits for a lock that is held across network I/O.

    transport = SpoolTransport({"dsn": DSN}, spool_dir=resolve_spool_dir(None))
    sentry_sdk.init(dsn=DSN, transport=transport)
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sentry_sdk.envelope import Envelope, Item
from sentry_sdk.transport import Transport

from stackwatch.sdk.delivery import (
    HELD_CATEGORIES,
    Answer,
    Backoff,
    Delivery,
    DeliveryError,
    RateLimits,
    parse_retry_after,
    with_sent_at_now,
)
from stackwatch.sdk.losses import LostEvents, item_quantities
from stackwatch.sdk.spool import DiskSpool, MemorySpool, Store, decode_categories, folder_for

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_RETRY_MAX_SECONDS",
    "MEMORY_FALLBACK_MAX_BYTES",
    "SpoolTransport",
    "resolve_max_bytes",
    "resolve_retry_max_seconds",
    "resolve_spool_dir",
]

logger = logging.getLogger("stackwatch.sdk")

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_RETRY_MAX_SECONDS = 60.0
MEMORY_FALLBACK_MAX_BYTES = 16 * 1024 * 1024
SPOOL_DIR_ENV = "STACKWATCH_SPOOL_DIR"
MAX_BYTES_ENV = "STACKWATCH_SPOOL_MAX_BYTES"
# The spool counts as unhealthy (sentry-sdk then sheds optional data such as traces) from this fill level on.
UNHEALTHY_FILL = 0.9
HELD_BACK_RELIST_SECONDS = 0.5
# Bursts of captures (see SpoolTransport._yield_to_capturing_threads).
BURST_QUIET_SECONDS = 0.002
BURST_MAX_DEFER_SECONDS = 0.1
BURST_DEFER_FILL = 0.5
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def resolve_spool_dir(spool_dir: str | os.PathLike[str] | None = None) -> Path:
    """The spool directory: ``spool_dir``, else ``$STACKWATCH_SPOOL_DIR``, else a per-user state directory.

    The default is ``$XDG_STATE_HOME/stackwatch/spool``, or ``~/.local/state/stackwatch/spool`` (a temporary
    directory per user when there is no home directory). Nothing is created here.
    """
    chosen = spool_dir if spool_dir not in (None, "") else os.environ.get(SPOOL_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser()
    state = os.environ.get("XDG_STATE_HOME", "")
    if state and os.path.isabs(state):
        return Path(state) / "stackwatch" / "spool"
    try:
        return Path.home() / ".local" / "state" / "stackwatch" / "spool"
    except RuntimeError:  # no home directory (a service account without one)
        return Path(tempfile.gettempdir()) / f"stackwatch-{os.getuid()}" / "spool"


def resolve_max_bytes(max_bytes: int | None = None) -> int:
    """``max_bytes``, else ``$STACKWATCH_SPOOL_MAX_BYTES`` (``1048576``, ``512KB``, ``20MB``, ``1G``), else 100 MiB."""
    if max_bytes is None:
        text = os.environ.get(MAX_BYTES_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_BYTES
        match = _SIZE.match(text)
        if not match or int(match.group(1)) <= 0:
            raise ValueError(f"{MAX_BYTES_ENV}: expected a size such as 104857600, 512KB or 100MB, got {text!r}")
        return int(match.group(1)) * _UNITS[(match.group(2) or "").lower()[:1]]
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes: expected a positive number of bytes, got {max_bytes!r}")
    return max_bytes


def resolve_retry_max_seconds(retry_max_seconds: float | None = None) -> float:
    """The cap on the retry backoff: ``retry_max_seconds`` (a positive, finite number of seconds), else 60."""
    if retry_max_seconds is None:
        return DEFAULT_RETRY_MAX_SECONDS
    if (
        isinstance(retry_max_seconds, bool)
        or not isinstance(retry_max_seconds, int | float)
        or not math.isfinite(retry_max_seconds)
        or retry_max_seconds <= 0
    ):
        raise ValueError(f"retry_max_seconds: expected a positive number of seconds, got {retry_max_seconds!r}")
    return float(retry_max_seconds)


class SpoolTransport(Transport):
    """A sentry-sdk transport with a durable, bounded, multi-process spool on disk and a background sender.

    ``options`` are sentry-sdk's client options (at least ``"dsn"``; ``"send_client_reports"`` and
    ``"ca_certs"`` are honoured). ``spool_dir`` is the shared spool directory (see :func:`resolve_spool_dir`);
    this DSN's envelopes go in a folder of their own inside it. ``max_bytes`` bounds that folder (see
    :func:`resolve_max_bytes`); ``retry_max_seconds`` caps the backoff after failed sends (default 60).
    ``fsync=True`` makes every envelope survive a power loss too, at the cost of a disk flush per capture.
    The remaining keyword options tune timings, mostly for tests.
    """

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        max_bytes: int | None = None,
        retry_max_seconds: float | None = None,
        fsync: bool = False,
        poll_interval: float = 1.0,
        lock_retry_seconds: float = 1.0,
        rescan_seconds: float = 10.0,
        client_report_interval: float = 30.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        compress: bool = True,
    ) -> None:
        options = dict(options or {})
        if not options.get("dsn"):
            raise ValueError("SpoolTransport needs options['dsn']")
        super().__init__(options)
        assert self.parsed_dsn is not None
        self._parsed_dsn = self.parsed_dsn
        self._dsn = str(options["dsn"])
        self.spool_dir = resolve_spool_dir(spool_dir)
        self.max_bytes = resolve_max_bytes(max_bytes)
        self.retry_max_seconds = resolve_retry_max_seconds(retry_max_seconds)
        self._client_reports = bool(options.get("send_client_reports", True))
        self._delivery_options: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "compress": compress,
            "ca_certs": options.get("ca_certs"),
        }
        self._poll_interval = poll_interval
        self._lock_retry_seconds = lock_retry_seconds
        self._rescan_seconds = rescan_seconds
        self._client_report_interval = client_report_interval
        self._limits = RateLimits()
        self._lost = LostEvents()
        self._backoff = Backoff(self.retry_max_seconds)
        self._warned: set[str] = set()
        self._store: Store = self._open_store(fsync)
        self._locked_store: Store | None = None
        self._unreachable = False
        self._last_capture = 0.0
        self._init_threading()
        _TRANSPORTS.add(self)
        self._ensure_sender()

    # --- set-up -------------------------------------------------------------------------------------------

    def _open_store(self, fsync: bool) -> Store:
        folder = folder_for(self.spool_dir, self._dsn)
        try:
            return DiskSpool(folder, max_bytes=self.max_bytes, fsync=fsync, dsn=self._dsn)
        except OSError as error:
            self._warn_once("fallback", "cannot use the spool folder %s (%s)", folder, error)
            return MemorySpool(max_bytes=min(self.max_bytes, MEMORY_FALLBACK_MAX_BYTES))

    def _init_threading(self) -> None:
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        self._fallback_lock = threading.Lock()
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._progress = threading.Event()
        self._thread: threading.Thread | None = None
        self._killed = False

    def _after_fork_in_child(self) -> None:
        self._init_threading()
        self._locked_store = None
        self._store.after_fork()

    def _ensure_sender(self) -> None:
        if self._pid != os.getpid():
            self._after_fork_in_child()
        thread = self._thread
        if (thread is not None and thread.is_alive()) or self._killed:
            return
        with self._start_lock:
            if (self._thread is None or not self._thread.is_alive()) and not self._killed:
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="stackwatch-spool-sender", daemon=True
                )
                self._thread.start()

    # --- the sentry-sdk Transport interface (calling threads) ---------------------------------------------

    def capture_envelope(self, envelope: Envelope) -> None:
        """Put ``envelope`` in the spool. Never raises, never touches the network."""
        try:
            self._ensure_sender()
            kept = [item for item in envelope.items if self._keep_under_rate_limits(item)]
            if not kept:
                return
            if len(kept) != len(envelope.items):
                envelope = Envelope(headers=envelope.headers, items=kept)
            quantities = [pair for item in kept for pair in item_quantities(item)]
            self._write(envelope.serialize(), quantities)
            self._last_capture = time.monotonic()
            self._wakeup.set()
        except Exception:
            self._warn_once("capture", "could not spool an envelope", exc_info=True)

    def _keep_under_rate_limits(self, item: Item) -> bool:
        category = str(item.data_category)
        if category in HELD_CATEGORIES or self._limits.remaining(category) <= 0:
            return True
        self.record_lost_event("ratelimit_backoff", item=item)
        return False

    def _write(self, data: bytes, quantities: list[tuple[str, int]]) -> None:
        store = self._store
        try:
            lost = store.write(data, quantities)
        except OSError as error:
            if not store.durable:
                raise
            lost = self._fall_back(store, error).write(data, quantities)
        if self._client_reports:
            self._lost.add_all("queue_overflow", lost)

    def _fall_back(self, broken: Store, error: OSError) -> Store:
        with self._fallback_lock:
            if self._store is broken:
                self._warn_once("fallback", "cannot write to the spool folder (%s)", error)
                self._store = MemorySpool(max_bytes=min(self.max_bytes, MEMORY_FALLBACK_MAX_BYTES))
            return self._store

    def record_lost_event(
        self,
        reason: str,
        data_category: str | None = None,
        item: Item | None = None,
        *,
        quantity: int = 1,
    ) -> None:
        """Count discarded data for the next client report (the same contract as sentry-sdk's transports)."""
        if not self._client_reports:
            return
        if item is not None:
            self._lost.add_all(reason, item_quantities(item))
        elif data_category is not None:
            self._lost.add(reason, str(data_category), quantity)

    def flush(self, timeout: float, callback: Callable[[int, float], None] | None = None) -> None:
        """Wait up to ``timeout`` seconds until everything spooled before this call has been sent.

        Returns as soon as it has; with the server away it returns after ``timeout`` and the envelopes stay in
        the spool for later. Pending losses are written as a client report first. ``callback(pending, timeout)``
        is called once when the wait lasts longer than 0.1 s, as sentry-sdk's transports do.
        """
        try:
            self._flush(timeout, callback)
        except Exception:
            self._warn_once("flush", "flush failed", exc_info=True)

    def _flush(self, timeout: float, callback: Callable[[int, float], None] | None) -> None:
        self._ensure_sender()
        self._write_client_report()
        store = self._store
        names = store.pending()
        if not names or timeout <= 0:
            return
        mark = names[-1]
        started = time.monotonic()
        deadline = started + timeout
        told = callback is None
        self._wakeup.set()
        while (remaining := deadline - time.monotonic()) > 0:
            self._progress.wait(min(0.05, remaining))
            self._progress.clear()
            left = bisect.bisect_right(store.pending(), mark)
            if left == 0:
                return
            if not told and time.monotonic() - started >= 0.1:
                told = True
                assert callback is not None
                callback(left, timeout)

    def kill(self) -> None:
        """Stop the sender promptly. Nothing is deleted: what is still spooled is sent by the next process."""
        self._killed = True
        self._stop.set()
        self._wakeup.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A send in progress finishes first (up to the read timeout); do not hold the caller for it.
            thread.join(timeout=0.5)

    def is_healthy(self) -> bool:
        """False when the spool is (nearly) at its size bound, i.e. new envelopes start pushing out old ones."""
        store = self._store
        return store.total_bytes < UNHEALTHY_FILL * store.max_bytes

    @property
    def durable(self) -> bool:
        """False once the transport has fallen back to keeping envelopes in memory."""
        return self._store.durable

    @property
    def is_sender(self) -> bool:
        """Whether this transport's thread currently holds the spool's sender lock."""
        return self._locked_store is not None and self._locked_store is self._store

    @property
    def folder(self) -> Path:
        """This DSN's folder in the spool directory."""
        return folder_for(self.spool_dir, self._dsn)

    # --- the sender thread --------------------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        delivery: Delivery | None = None
        last_report = time.monotonic()
        last_refresh = -math.inf
        try:
            while not stop.is_set():
                try:
                    if delivery is None:
                        delivery = Delivery(self._parsed_dsn, **self._delivery_options)
                    now = time.monotonic()
                    if now - last_report >= self._client_report_interval and self._lost.pending():
                        last_report = now
                        self._write_client_report()
                    if now - last_refresh >= self._rescan_seconds:
                        last_refresh = now
                        self._store.refresh()
                    self._tick(stop, delivery)
                except Exception:
                    self._warn_once("sender", "the spool sender failed; retrying", exc_info=True)
                    stop.wait(1.0)
        finally:
            if delivery is not None:
                delivery.close()
            if self._locked_store is not None:
                self._locked_store.unlock()
                self._locked_store = None

    def _tick(self, stop: threading.Event, delivery: Delivery) -> None:
        store = self._store
        if self._locked_store is not None and self._locked_store is not store:
            self._locked_store.unlock()  # fell back to memory: let another process send the files
            self._locked_store = None
        if not store.try_lock():
            stop.wait(self._lock_retry_seconds)
            return
        self._locked_store = store
        self._wakeup.clear()
        names = store.pending()
        if not names:
            self._progress.set()
            self._wakeup.wait(self._poll_interval)
            return
        started = time.monotonic()
        pause, held_back = self._send_batch(stop, store, names, delivery)
        self._progress.set()
        if pause > 0:
            stop.wait(pause)
        elif held_back > 0:
            # Everything left is rate limited. A new file (say a client report) may be sendable before the
            # limit ends, so wake up for it, but relist no more than twice a second however fast files come.
            self._wakeup.wait(held_back)
            stop.wait(max(0.0, HELD_BACK_RELIST_SECONDS - (time.monotonic() - started)))

    def _send_batch(
        self, stop: threading.Event, store: Store, names: list[str], delivery: Delivery
    ) -> tuple[float, float]:
        """Send ``names`` in order. Returns the seconds to pause after a failure (or 0), and the seconds until
        the first rate limit that held files back ends (or 0)."""
        held_back = math.inf
        for name in names:
            if stop.is_set():
                return 0.0, 0.0
            categories = [category for category, _ in decode_categories(name)]
            wait = self._limits.blocked([c for c in categories if c in HELD_CATEGORIES])
            if wait > 0:
                held_back = min(held_back, wait)
                continue
            self._yield_to_capturing_threads(stop, store)
            pause = self._send_one(store, name, categories, delivery)
            self._progress.set()
            if pause is not None:
                return pause, 0.0
        return 0.0, (held_back if held_back != math.inf else 0.0)

    def _yield_to_capturing_threads(self, stop: threading.Event, store: Store) -> None:
        """During a burst of captures in this process, send only in the gaps between them.

        The sender shares the GIL with the application: every envelope it sends costs ~0.1-0.2 ms of Python that
        a capturing thread may have to wait for. So while captures follow each other closely, it waits for a
        quiet moment, for at most ``BURST_MAX_DEFER_SECONDS`` per envelope (sending still progresses), and not
        at all once the spool is half full (then draining it matters more than the callers' latency).
        """
        deadline = time.monotonic() + BURST_MAX_DEFER_SECONDS
        while store.total_bytes < BURST_DEFER_FILL * store.max_bytes:
            now = time.monotonic()
            quiet = now - self._last_capture
            if quiet >= BURST_QUIET_SECONDS or now >= deadline or stop.is_set():
                return
            stop.wait(min(BURST_QUIET_SECONDS - quiet, deadline - now))

    def _send_one(self, store: Store, name: str, categories: list[str], delivery: Delivery) -> float | None:
        """Send one spooled envelope; None to go on with the next, or the seconds to pause first."""
        try:
            data = store.read(name)
        except OSError as error:
            self._warn_once("read", "cannot read %s from the spool (%s); skipping it", name, error)
            return None
        if data is None:
            return None  # evicted, or sent by another process
        body = self._prepare(data, categories)
        if body is None:
            store.remove(name)
            return None
        store.in_flight = name
        try:
            answer = delivery.post(body)
        except DeliveryError as error:
            if not self._unreachable:
                self._unreachable = True
                logger.warning("stackwatch.sdk: cannot reach %s (%s); envelopes stay in the spool", delivery.url, error)
            return self._backoff.next_delay()
        finally:
            store.in_flight = None
        if self._unreachable:
            self._unreachable = False
            logger.info("stackwatch.sdk: %s answers again; sending the spool", delivery.url)
        self._limits.update(answer)
        return self._handle_answer(store, name, categories, answer)

    def _handle_answer(self, store: Store, name: str, categories: list[str], answer: Answer) -> float | None:
        if answer.ok:
            store.remove(name)
            self._backoff.reset()
            return None
        if answer.permanent:
            self._warn_once(
                f"status {answer.status}", "the server refused an envelope with %s; dropping it", answer.status
            )
            # Counted before the file goes: whoever sees the spool without it (a flush) must find the loss.
            if self._client_reports:
                self._lost.add_all("send_error", decode_categories(name))
            store.remove(name)
            return None
        if answer.status == 429 and self._limits.blocked([c for c in categories if c in HELD_CATEGORIES]) > 0:
            return None  # the limit now holds this file (and those like it) back; others may still go
        pause = self._backoff.next_delay()
        retry_after = parse_retry_after(answer.retry_after)
        return max(pause, retry_after) if retry_after is not None else pause

    def _prepare(self, data: bytes, categories: list[str]) -> bytes | None:
        """The body to send: rate-limited optional items dropped (None when nothing is left), ``sent_at`` now."""
        if any(c not in HELD_CATEGORIES and self._limits.remaining(c) > 0 for c in categories):
            try:
                envelope = Envelope.deserialize(data)
            except Exception:
                return with_sent_at_now(data)  # unreadable: the server will say so, and the file goes
            kept = [item for item in envelope.items if self._keep_under_rate_limits(item)]
            if not kept:
                return None
            data = Envelope(headers=envelope.headers, items=kept).serialize()
        return with_sent_at_now(data)

    def _write_client_report(self) -> None:
        if not self._client_reports:
            return
        report = self._lost.take_report()
        if report is not None:
            self._write(report.serialize(), [("internal", 1)])
            self._wakeup.set()

    def _warn_once(self, key: str, message: str, *args: object, exc_info: bool = False) -> None:
        if key not in self._warned:
            self._warned.add(key)
            suffix = "; falling back to an in-memory queue (not durable)" if key == "fallback" else ""
            logger.warning("stackwatch.sdk: " + message + suffix, *args, exc_info=exc_info)


# Every live transport, so that a forked child can reset their thread state before any thread runs.
_TRANSPORTS: weakref.WeakSet[SpoolTransport] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for transport in list(_TRANSPORTS):
        transport._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)
