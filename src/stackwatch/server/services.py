"""The server's long-lived parts (engine, inbox, digester), opened once per process.

Kept apart from the web application so that a digest process can open them without importing the web stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from stackwatch.server.alerts import channels
from stackwatch.server.alerts.dispatcher import Dispatcher
from stackwatch.server.config import Settings
from stackwatch.server.digest.worker import Digester
from stackwatch.server.retention import Limits, Retention
from stackwatch.server.storage import db
from stackwatch.server.storage.disk import DiskUsage
from stackwatch.server.storage.inbox import Inbox, open_inbox
from stackwatch.server.storage.sealing import Sealer

__all__ = ["Services", "open_services"]


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: Engine
    inbox: Inbox
    digester: Digester
    dispatcher: Dispatcher
    disk: DiskUsage  # this process's measure of the store against STACKWATCH_MAX_DISK_MB

    def close(self) -> None:
        self.inbox.close()
        self.engine.dispose()


def open_services(settings: Settings, *, migrate: bool = True) -> Services:
    engine = db.connect(settings.database_url, synchronous=settings.sqlite_synchronous)
    if migrate:
        db.migrate(engine)
    sealer = Sealer(settings.secret_key)
    inbox = open_inbox(engine, settings.database_url, sealer=sealer, synchronous=settings.sqlite_synchronous)
    disk = DiskUsage(settings.database_url, engine, settings.max_disk_mb * 1024 * 1024)
    digester = Digester(
        engine,
        inbox,
        batch_size=settings.digest_batch_size,
        max_attachment_bytes=settings.max_attachment_bytes,
        identity_key=settings.secret_key.encode(),
        base_url=settings.base_url,
        quarantine_days=settings.quarantine_days,
        retention=Retention(
            engine,
            Limits(settings.retention_days, settings.retention_max_events),
            interval=settings.retention_interval,
            pressure=disk.pressure,  # near STACKWATCH_MAX_DISK_MB, the count limits tighten
            max_future=settings.max_future_seconds,
        ),
        max_future=settings.max_future_seconds,
        waiting_kinds=channels.waiting_kinds(settings),
    )
    dispatcher = Dispatcher(engine, settings)
    # A batch that wrote notifications wakes the dispatcher of this process at once.
    digester.listeners.append(lambda result: dispatcher.wakeup.set() if result.notifications else None)
    return Services(settings, engine, inbox, digester, dispatcher, disk)
