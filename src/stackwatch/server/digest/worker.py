"""The digest worker: takes inbox batches and stores what they mean, in a thread of its own.

One batch is one transaction on the main database: the rows are taken from the inbox, parsed, grouped and
written, and marked digested, all or nothing. If the process dies mid-batch nothing of it is committed and
the rows are taken again; if it dies after the commit the rows are already marked, so nothing is doubled.
Rows whose sealed body does not open (the secret key changed while they waited) go to the quarantine in that
same transaction: they are kept, not digested, and never stop the batch.
"""

from __future__ import annotations

import gc
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import OperationalError

from stackwatch.scrub import ScrubOptions
from stackwatch.server.alerts.evaluate import evaluate_batch
from stackwatch.server.digest.dictionaries import DictionaryPolicy, PayloadCompressor, maintain
from stackwatch.server.digest.grouping import CURRENT, STRATEGIES, moving_from
from stackwatch.server.digest.grouping.rules import EMPTY, ProjectRules, RuleError
from stackwatch.server.digest.items import Grouping, ProjectPolicy, parse_rows
from stackwatch.server.digest.store import BatchResult, write_batch
from stackwatch.server.digest.timestamps import MAX_FUTURE, MAX_PAST
from stackwatch.server.metrics import record_counters
from stackwatch.server.retention import Retention
from stackwatch.server.storage import disk, partitions, quarantine, snooze
from stackwatch.server.storage.inbox import Inbox, InboxRow
from stackwatch.server.storage.schema import projects

__all__ = ["DigestWorker", "Digester"]

log = logging.getLogger("stackwatch.digest")

Listener = Callable[[BatchResult], None]

_DAY = 86_400.0
_RETENTION_BUSY = 0.05  # seconds of retention work after a batch, under load
_RETENTION_IDLE = 0.5  # and when the inbox is empty
_QUARANTINE_SWEEP = 60.0  # seconds between sweeps of the quarantine (expiry, sealing what an old version left)
# The main SQLite file's free pages (left by deleted rows: retention, deleted issues, the quarantine's expiry)
# are looked at every few seconds. Up to _RECLAIM_KEEP of them (8 MB) are kept for the next rows; beyond that
# they go back to the disk, at most _RECLAIM_TURN (busy) or _RECLAIM_TURN_IDLE pages per look, in steps that
# each hold the write lock for a few milliseconds (storage/disk.py): a batch waits for one step at most.
_RECLAIM_CHECK = 5.0
_RECLAIM_KEEP = 2048
_RECLAIM_TURN = 1024
_RECLAIM_TURN_IDLE = 8192
_DICTIONARY_CHECK = 10.0  # seconds between looks at whether a project is due a compression dictionary
_DICTIONARY_CHECK_EVENTS = 1000  # or sooner, after this many events
# Seconds between turns of the events partitions' upkeep (PostgreSQL): weeks are made four ahead, so this only
# needs to be often enough to drop a partition soon after it expires.
_PARTITION_UPKEEP = 600.0
_SNOOZE_CHECK = 30.0  # seconds between looks for snoozed issues whose "until" has passed


def _policies(
    connection: Connection, project_ids: set[int], max_past: float, max_future: float, now: float
) -> dict[int, ProjectPolicy]:
    """Each project's policy; ``max_past`` is the retention window of a project without its own."""
    columns = projects.c
    query = select(
        columns.id,
        columns.collect_ips,
        columns.scrub_emails,
        columns.scrub_ips,
        columns.retention_days,
        columns.grouping_version,
        columns.grouping_previous,
        columns.grouping_transition_until,
        columns.stacktrace_rules,
        columns.fingerprint_rules,
    ).where(columns.id.in_(project_ids))
    return {
        row.id: ProjectPolicy(
            collect_ips=bool(row.collect_ips),
            scrub=ScrubOptions(scrub_emails=bool(row.scrub_emails), scrub_ips=bool(row.scrub_ips)),
            max_past=row.retention_days * _DAY if row.retention_days else max_past,
            max_future=max_future,
            grouping=_grouping(row, now),
        )
        for row in connection.execute(query)
    }


def _grouping(row: Any, now: float) -> Grouping:
    """A project's grouping; rules that no longer parse (saved by an older Stackwatch) are logged and ignored."""
    try:
        rules = ProjectRules.parse(row.stacktrace_rules, row.fingerprint_rules)
    except RuleError as error:
        log.warning("project %d: grouping rules ignored: %s", row.id, error)
        rules = EMPTY
    version = row.grouping_version if row.grouping_version in STRATEGIES else CURRENT
    previous = moving_from(row.grouping_previous, row.grouping_transition_until, now)
    return Grouping(version, previous if previous in STRATEGIES else None, rules)


class Digester:
    def __init__(
        self,
        engine: Engine,
        inbox: Inbox,
        *,
        batch_size: int = 500,
        max_attachment_bytes: int = 10 << 20,
        identity_key: bytes = b"",
        base_url: str = "",
        quarantine_days: int = 14,
        retention: Retention | None = None,
        dictionaries: bool = True,
        dictionary_policy: DictionaryPolicy | None = None,
        max_future: float = MAX_FUTURE,
        waiting_kinds: frozenset[str] = frozenset(),
    ):
        self.retention = retention
        # Alert channel kinds that cannot send under the server's settings (e-mail without SMTP): the rules write
        # nothing for them (alerts/evaluate.py).
        self.waiting_kinds = waiting_kinds
        # Event timestamps further ahead than this, or older than the retention window (30 days without
        # retention), are replaced by the receive time (digest/timestamps.py).
        self._max_future = max_future
        self._max_past = retention.defaults.days * _DAY if retention is not None else MAX_PAST
        self._engine = engine
        self._quarantine_days = quarantine_days
        self._swept = 0.0
        self._reclaim_due = 0.0
        self._partitioned = -math.inf  # monotonic time of the last partition upkeep: the first tidy does it
        self._snoozes_checked = -math.inf  # of the last look for snoozes whose time has passed
        self._identity_key = identity_key
        self._base_url = base_url
        self._inbox = inbox
        self._batch_size = batch_size
        self._max_attachment_bytes = max_attachment_bytes
        self._compressor = PayloadCompressor()
        self._dictionaries = dictionaries
        self.dictionary_policy = dictionary_policy or DictionaryPolicy()
        # Projects this digester stored events of since it last looked at their dictionaries, and how many events.
        self._digested: set[int] = set()
        self._digested_events = 0
        self._dictionaries_checked = 0.0
        self.listeners: list[Listener] = []
        self.last_batch_full = False  # whether the last batch took as many envelopes as it could

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def run_once(self, limit: int | None = None) -> BatchResult | None:
        """Digest one batch (of at most ``limit`` envelopes); ``None`` when the inbox had nothing."""
        with _no_cyclic_gc():
            return self._run_batch(limit or self._batch_size)

    def _run_batch(self, limit: int) -> BatchResult | None:
        with self._engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                rows = self._inbox.take(connection, limit)
                self.last_batch_full = len(rows) >= limit
                if not rows:
                    return None
                readable = self._quarantine_unreadable(connection, rows)
                project_ids = {row.project_id for row in readable}
                policies = _policies(connection, project_ids, self._max_past, self._max_future, time.time())
                # Envelopes of a project deleted since they were accepted have nowhere to go.
                known = [row for row in readable if row.project_id in policies]
                batch = parse_rows(known, policies, self._max_attachment_bytes, self._identity_key)
                if self._compressor.refreshed == float("-inf"):
                    self._compressor.refresh(connection)  # the dictionaries stored before this process started
                result = write_batch(connection, batch, self._compressor)
                # Notifications are committed with the events that caused them, or not at all.
                result.notifications = evaluate_batch(
                    connection,
                    result.stored,
                    result.new_issues,
                    result.regressions,
                    now=time.time(),
                    base_url=self._base_url,
                    waiting_kinds=self.waiting_kinds,
                    escalations=result.escalations,
                )
                _count(connection, result, batch.invalid_items)
                self._inbox.done(connection, rows)
        self._inbox.after_commit(rows)
        self._digested.update(event.project_id for _, event in result.stored)
        self._digested_events += result.events
        for listener in self.listeners:
            try:
                listener(result)
            except Exception:
                log.exception("digest listener failed")
        return result

    def _quarantine_unreadable(self, connection: Connection, rows: list[InboxRow]) -> list[InboxRow]:
        """Quarantine the rows whose bodies did not open; return the others."""
        unreadable = [row for row in rows if row.unreadable is not None]
        for row in unreadable:
            log.error("inbox envelope %d quarantined: %s", row.id, row.unreadable)
            quarantine.put(connection, row, row.body, str(row.unreadable), time.time())
        if unreadable:
            record_counters(connection, {"stackwatch_digest_quarantined_total": len(unreadable)})
        return [row for row in rows if row.unreadable is None]

    def quarantine_next(self, error: str) -> None:
        """Move the oldest inbox envelope, which failed to digest even alone, to the quarantine, sealed."""
        with self._engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                rows = self._inbox.take(connection, 1)
                error = quarantine.safe_error(error)  # an exception's message may quote the envelope
                for row in rows:
                    log.error("inbox envelope %d could not be digested; quarantined: %s", row.id, error)
                    quarantine.put(connection, row, self._inbox.stored_body(row), error, time.time())
                if rows:
                    record_counters(connection, {"stackwatch_digest_quarantined_total": len(rows)})
                self._inbox.done(connection, rows)
        self._inbox.after_commit(rows)

    def tidy(self, *, idle: bool) -> None:
        """Housekeeping between batches: the inbox's (a WAL checkpoint on SQLite), retention's (a slice of the
        pass under way: longer when idle, short between batches under load), the compression dictionaries (at most
        one trained per call), and now and then the quarantine's: envelopes older than ``quarantine_days`` are
        deleted, plaintext ones left by an older version sealed. On SQLite, free pages of the main file beyond a
        few MB go back to the disk; and the events partitions' (PostgreSQL)."""
        self._inbox.tidy(idle=idle)
        if self.retention is not None:
            self.retention.step(_RETENTION_IDLE if idle else _RETENTION_BUSY)
        if self._dictionaries:
            self.maintain_dictionaries()
        self._reclaim(idle=idle)
        if time.monotonic() - self._snoozes_checked >= _SNOOZE_CHECK:
            self._snoozes_checked = time.monotonic()
            self.wake_snoozed(time.time())
        if time.monotonic() - self._partitioned >= _PARTITION_UPKEEP:
            self._partitioned = time.monotonic()
            self.maintain_partitions(time.time())
        if time.monotonic() - self._swept < _QUARANTINE_SWEEP:
            return
        self._swept = time.monotonic()
        with self._engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            expired = quarantine.expire(connection, time.time() - self._quarantine_days * _DAY)
            sealed = quarantine.seal_plaintext(connection, self._inbox.seal)
        if expired:
            log.warning(
                "deleted %d quarantined envelopes older than %d days (STACKWATCH_QUARANTINE_DAYS)",
                expired,
                self._quarantine_days,
            )
        if sealed:
            log.info("sealed %d quarantined envelopes that an older version had kept as sent", sealed)

    def _reclaim(self, *, idle: bool) -> None:
        if self._engine.dialect.name != "sqlite" or time.monotonic() < self._reclaim_due:
            return
        self._reclaim_due = time.monotonic() + _RECLAIM_CHECK
        turn = _RECLAIM_TURN_IDLE if idle else _RECLAIM_TURN
        with self._engine.connect() as connection:
            free = disk.free_pages(connection)
            if free <= _RECLAIM_KEEP:
                return
            freed = disk.reclaim(connection, min(free - _RECLAIM_KEEP, turn))
        log.debug("gave %d free pages of the database back to the disk", freed)
        if freed >= turn:  # more are left: look again at the next turn
            self._reclaim_due = 0.0

    def maintain_dictionaries(self, *, force: bool = False) -> int | None:
        """Train a compression dictionary for a project this digester stored events of, if one is due.

        Looked at when :data:`_DICTIONARY_CHECK_EVENTS` events were stored since the last look, or
        :data:`_DICTIONARY_CHECK` seconds passed with some (a few indexed reads per project and the frame
        headers of its newest payloads); ``force`` looks now, at every project. Returns the id of the dictionary
        trained.
        """
        if not force:
            waited = time.monotonic() - self._dictionaries_checked >= _DICTIONARY_CHECK
            if not self._digested or (self._digested_events < _DICTIONARY_CHECK_EVENTS and not waited):
                return None
        if force:
            with self._engine.connect() as connection:
                self._digested.update(connection.execute(select(projects.c.id)).scalars())
        projects_seen, self._digested, self._digested_events = self._digested, set(), 0
        self._dictionaries_checked = time.monotonic()
        trained = maintain(self._engine, self._compressor, projects_seen, self.dictionary_policy)
        if trained is not None:  # the others may be due too: look again at the next turn
            self._digested |= projects_seen
            self._dictionaries_checked = 0.0
        return trained

    def wake_snoozed(self, now: float) -> list[int]:
        """Unresolve the snoozed issues whose "until" has passed at ``now`` (storage/snooze.py); their ids."""
        with self._engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            woken = snooze.wake_due(connection, now)
        if woken:
            log.info("%d snoozed issues are unresolved again: their snooze time has passed", len(woken))
        return woken

    def maintain_partitions(self, now: float) -> tuple[int, int]:
        """Make the coming weeks' partitions of events and drop those older than every project's retention
        (none without retention)."""
        if self._engine.dialect.name != "postgresql":
            return 0, 0
        with self._engine.begin() as connection:
            default = self.retention.defaults.days if self.retention is not None else math.inf
            keep = partitions.keep_days(connection, default)
            created, dropped = partitions.maintain(connection, now, keep)
        if created or dropped:
            log.info("events partitions: %d created, %d dropped (events kept %g days)", created, dropped, keep)
        return created, dropped

    def count_failure(self) -> None:
        """Count a failed batch in the database when it answers (the failure may be that it does not)."""
        try:
            with self._engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
                record_counters(connection, {"stackwatch_digest_failures_total": 1})
        except Exception:
            log.debug("could not count a digest failure", exc_info=True)

    def drain(self) -> int:
        """Digest until the inbox is empty; return the number of events stored."""
        total = 0
        while (result := self.run_once()) is not None:
            total += result.events
        return total


def _count(connection: Connection, result: BatchResult, invalid: int) -> None:
    record_counters(
        connection,
        {
            "stackwatch_digest_batches_total": 1,
            "stackwatch_digest_events_total": result.events,
            "stackwatch_digest_duplicates_total": result.duplicates,
            "stackwatch_digest_invalid_items_total": invalid,
            "stackwatch_issues_created_total": len(result.new_issues),
            "stackwatch_issues_regressed_total": len(result.regressions),
        },
    )


# A digest thread is CPU-bound Python beside ingest threads whose every request waits for the GIL a few times.
_SWITCH_INTERVAL = 0.001  # seconds; CPython's default, 0.005, made each of those waits up to 5 ms
_tuned = False


def _tune_interpreter() -> None:
    """Once per process, when a digest thread starts beside ingest.

    * The GIL is handed over after 1 ms instead of 5 (``sys.setswitchinterval``): ingest p99 at 500 events/s
      fell from ~16 to ~13 ms in bench/loadgen.py.
    * What is alive once the server is up (modules, the app, SQLAlchemy's caches) is put out of the collector's
      sight (``gc.freeze``): a full collection otherwise scans those ~100,000 objects, which never become
      garbage, for 50-80 ms with the GIL held, and every ingest request in flight waits it out.
    """
    global _tuned
    if not _tuned:
        _tuned = True
        sys.setswitchinterval(min(sys.getswitchinterval(), _SWITCH_INTERVAL))
        gc.collect()
        gc.freeze()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """No cyclic garbage collection while a batch is in flight.

    A batch is hundreds of parsed events, all freed by reference counting when it ends. Collections during
    the batch only promote them to older generations, and the full collections that follow then scan the whole
    heap with the GIL held: pauses of tens of milliseconds that every ingest request waiting meanwhile pays.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class DigestWorker:
    """Runs a :class:`Digester` until stopped; waits on the inbox's wake-up event or polls when idle.

    Under a moderate load a batch that was not full is followed by a pause of up to ``batch_interval``, so that
    the next one is worth taking: a batch has a fixed cost (a dozen statements, a commit) of several times
    that of an event, and batches of one or two events back to back would spend on it the CPU that ingest
    needs. Idle, the first envelope is digested at once; at full load batches are full and follow at once.
    """

    ISOLATE_AFTER = 3
    ISOLATED_TRIES = 2

    def __init__(self, digester: Digester, inbox: Inbox, *, poll_interval: float = 0.25, batch_interval: float = 0.1):
        self._digester = digester
        self._inbox = inbox
        self._poll = poll_interval
        self._batch_interval = batch_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        _tune_interpreter()
        self._thread = threading.Thread(target=self._loop, name="stackwatch-digest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._inbox.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        failures = 0  # consecutive failed batches
        isolate = 0  # envelopes still to digest one at a time
        strikes = 0  # failures of the one envelope being digested alone
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._inbox.wakeup.clear()
                result = self._digester.run_once(1 if isolate else None)
            except OperationalError:
                # The database is unreachable or locked: an outage, not a bad envelope. Wait and retry.
                self._failed(failures := min(failures + 1, 8))
                continue
            except Exception as exc:
                # A batch that keeps failing is retried one envelope at a time; an envelope that still fails
                # alone is quarantined, so a single envelope can never stop the digest of all the others.
                if isolate:
                    strikes += 1
                    if strikes >= self.ISOLATED_TRIES:
                        strikes, isolate = 0, isolate - 1
                        try:
                            self._digester.quarantine_next(f"{type(exc).__name__}: {exc}")
                        except Exception:
                            self._failed(1)
                    continue
                failures += 1
                if failures >= self.ISOLATE_AFTER:
                    failures, isolate = 0, self._digester.batch_size
                self._failed(failures)
                continue
            failures = strikes = 0
            self._tidy(idle=result is None)
            if result is None:
                isolate = 0
                self._inbox.wakeup.wait(self._poll)
            elif isolate:
                isolate -= 1
            elif not self._digester.last_batch_full:
                self._stop.wait(started + self._batch_interval - time.monotonic())

    def _tidy(self, *, idle: bool) -> None:
        try:
            self._digester.tidy(idle=idle)
        except Exception:  # housekeeping is retried on the next turn; it must never stop the digest
            log.exception("digest housekeeping failed")

    def _failed(self, failures: int) -> None:
        self._digester.count_failure()
        log.exception("digest batch failed (attempt %d); the envelopes stay in the inbox", failures)
        self._stop.wait(min(30.0, 0.2 * 2 ** min(failures, 7)))
