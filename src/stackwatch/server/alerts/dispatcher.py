"""Delivers the outbox: claims due notifications, sends each through its channel, records the outcome.

* A notification is claimed with a lease (its next attempt moved ``LEASE`` seconds ahead, in a short write
  transaction; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers never claim the same one) and sent
  outside any transaction. A dispatcher that dies mid-send leaves the lease to expire and the notification is
  sent again: delivery is at least once, and every message carries its idempotency key so a receiver can drop a
  repeat. Pending notifications therefore resume by themselves after a restart.
* A transient failure (timeout, 5xx, SMTP 4xx) is retried with exponential backoff and jitter; a permanent one
  (4xx, refused recipient) is given up at once; after ``max_attempts`` the notification is given up too.
* Each attempt updates its channel's health: consecutive failures, the last error; three failures in a row make
  a channel unhealthy, which the API shows.
* A notification for a channel that waits for a server setting (e-mail without SMTP: ``channels.waiting_for``) is
  not claimed: it stays pending, without an attempt or a failure, until a server with that setting runs. The digest
  writes none while it waits (alerts/evaluate.py); these are only those queued before the setting went away.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, select, update

from stackwatch.server.alerts import channels as channel_modules
from stackwatch.server.alerts.channels.base import ChannelError
from stackwatch.server.alerts.message import Notification
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import alert_channels, alert_outbox, users

__all__ = ["UNHEALTHY_AFTER", "Dispatcher", "channel_config", "send_now"]

log = logging.getLogger("stackwatch.alerts")

LEASE = 120.0  # seconds a claimed notification is reserved for its dispatcher
KEEP_SECONDS = 30 * 86400.0  # sent and failed notifications are kept this long as a record, then pruned
_PRUNE_EVERY = 3600.0
UNHEALTHY_AFTER = 3  # consecutive failures
_BATCH = 20


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    permanent: bool = False
    error: str | None = None
    waiting: str | None = None  # what the channel waits for (``"smtp"``): nothing was attempted, nothing failed


def channel_config(connection: Any, config_text: str) -> dict[str, Any]:
    """A channel's stored configuration, with ``"admins": true`` expanded to the administrators' addresses."""
    config = json.loads(config_text)
    if config.get("admins"):
        admins = connection.execute(select(users.c.email).where(users.c.is_admin.is_(True))).scalars()
        config = {**config, "to": sorted({*config.get("to", []), *admins})}
        config.pop("admins", None)
    return dict(config)


def send_now(kind: str, config: dict[str, Any], notification: Notification, settings: Any) -> Outcome:
    """One delivery attempt through a channel; never raises. A channel that waits for a server setting is not
    attempted: the outcome says what it waits for."""
    waiting = channel_modules.waiting_for(kind, settings)
    if waiting is not None:
        return Outcome(False, True, channel_modules.WAITING_MESSAGES[waiting], waiting=waiting)
    try:
        channel_modules.get(kind).build(config, settings).send(notification)
    except ChannelError as error:
        return Outcome(False, error.permanent, str(error))
    except Exception as error:  # a bug in a channel must not stop the dispatcher; retried like a transient error
        log.exception("channel %s failed unexpectedly", kind)
        # Only the type: the message of an unexpected error may hold the channel's URL; the log has it, redacted.
        return Outcome(False, False, f"{kind} channel failed unexpectedly ({type(error).__name__}; see the server log)")
    return Outcome(True)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        settings: Any,
        *,
        poll_interval: float = 1.0,
        retry_seconds: float = 10.0,
        max_attempts: int = 12,
    ):
        self._engine = engine
        self._settings = settings
        self._poll = poll_interval
        self._retry = retry_seconds
        self._max_attempts = max_attempts
        self._waiting_kinds = channel_modules.waiting_kinds(settings) if settings is not None else frozenset()
        self._stop = threading.Event()
        self.wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="stackwatch-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        last_prune = 0.0
        while not self._stop.is_set():
            try:
                if now() - last_prune >= _PRUNE_EVERY:
                    last_prune = now()
                    self.prune()
                busy = self.run_once() >= _BATCH
            except Exception:
                log.exception("alert dispatch failed; retrying")
                busy = False
            if not busy:
                self.wakeup.wait(self._poll)
                self.wakeup.clear()

    def prune(self, keep_seconds: float = KEEP_SECONDS) -> int:
        """Delete sent and failed notifications older than ``keep_seconds``; pending ones are never pruned."""
        with self._engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                done = connection.execute(
                    delete(alert_outbox).where(
                        alert_outbox.c.status.in_(("sent", "failed")), alert_outbox.c.created_at < now() - keep_seconds
                    )
                )
        return int(done.rowcount)

    def run_once(self) -> int:
        """Attempt every due notification (up to a batch); returns how many were attempted."""
        claimed = self._claim()
        for row in claimed:
            self._deliver(row)
        return len(claimed)

    def _claim(self) -> list[Any]:
        moment = now()
        conditions = [alert_outbox.c.status == "pending", alert_outbox.c.next_attempt_at <= moment]
        if self._waiting_kinds:
            waiting = select(alert_channels.c.id).where(alert_channels.c.kind.in_(self._waiting_kinds))
            conditions.append(alert_outbox.c.channel_id.not_in(waiting))
        with self._engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                due = connection.execute(
                    select(alert_outbox.c.id)
                    .where(*conditions)
                    .order_by(alert_outbox.c.id)
                    .limit(_BATCH)
                    .with_for_update(skip_locked=True)
                ).scalars()
                ids = list(due)
                if not ids:
                    return []
                connection.execute(
                    update(alert_outbox)
                    .where(alert_outbox.c.id.in_(ids))
                    .values(next_attempt_at=moment + LEASE, attempts=alert_outbox.c.attempts + 1)
                )
                query = (
                    select(alert_outbox, alert_channels.c.kind, alert_channels.c.config)
                    .join(alert_channels, alert_channels.c.id == alert_outbox.c.channel_id)
                    .where(alert_outbox.c.id.in_(ids))
                    .order_by(alert_outbox.c.id)
                )
                return [(row, channel_config(connection, row.config)) for row in connection.execute(query)]

    def _deliver(self, claimed: Any) -> None:
        row, config = claimed
        outcome = send_now(row.kind, config, Notification.from_json(json.loads(row.payload)), self._settings)
        moment = now()
        if outcome.delivered:
            values: dict[str, Any] = {"status": "sent", "sent_at": moment, "last_error": None}
        elif outcome.permanent or row.attempts >= self._max_attempts:  # attempts counts this one
            values = {"status": "failed", "last_error": outcome.error}
            log.warning("notification %s given up: %s", row.idempotency_key, outcome.error)
        else:
            delay = min(self._retry * 2 ** (row.attempts - 1), 3600.0) * random.uniform(0.8, 1.2)
            values = {"next_attempt_at": moment + delay, "last_error": outcome.error}
        with self._engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            with connection.begin():
                connection.execute(update(alert_outbox).where(alert_outbox.c.id == row.id).values(**values))
                record_health(connection, row.channel_id, outcome, moment)


def record_health(connection: Any, channel_id: int, outcome: Outcome, moment: float) -> None:
    """Count a failure or a success on the channel; a channel that only waits for a setting has neither."""
    if outcome.waiting is not None:
        return
    channel = alert_channels.c
    if outcome.delivered:
        values: dict[str, Any] = {"consecutive_failures": 0, "last_success_at": moment}
    else:
        values = {
            "consecutive_failures": channel.consecutive_failures + 1,
            "last_error": (outcome.error or "")[:2000],
            "last_failure_at": moment,
        }
    connection.execute(update(alert_channels).where(channel.id == channel_id).values(**values))
