"""Disk: incremental auto-vacuum, the inbox given back when drained, and STACKWATCH_MAX_DISK_MB."""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text

from stackwatch.cli import main
from stackwatch.server.config import Settings
from stackwatch.server.services import Services, open_services
from stackwatch.server.storage import db, disk
from stackwatch.server.storage.schema import issues
from tests.conftest import PYTHON_KEY, ServerFactory, ServerProcess, Stack
from tests.support import AUTH, event_envelope, message_event, new_id, send_ok

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQLite's files


def mode(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("PRAGMA auto_vacuum").fetchone()[0])


def size(path: Path) -> int:
    """The file and its WAL."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def fill_scratch_table(engine: Engine, pages: int) -> None:
    """A table of ``pages`` pages, then dropped: that many free pages in the file."""
    with engine.connect() as connection, connection.begin():
        connection.execute(text("CREATE TABLE scratch (b BLOB)"))
        connection.execute(text("INSERT INTO scratch VALUES (:b)"), [{"b": os.urandom(3500)} for _ in range(pages)])
    with engine.connect() as connection, connection.begin():
        connection.execute(text("DROP TABLE scratch"))


# --- auto-vacuum --------------------------------------------------------------------------------------------------
@SQLITE_ONLY
def test_new_files_have_incremental_auto_vacuum(settings: Settings, services: Services) -> None:
    for path in (db.sqlite_path(settings.database_url), db.inbox_path(settings.database_url)):
        assert path is not None and mode(path) == 2


def _none_file(path: Path) -> None:
    """A database file as an older version made it: WAL, auto_vacuum=NONE, a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE leftover (b BLOB)")
        connection.executemany("INSERT INTO leftover VALUES (?)", [(os.urandom(3000),) for _ in range(300)])
        connection.execute("DELETE FROM leftover")
    assert mode(path) == 0


@SQLITE_ONLY
def test_small_files_of_an_older_version_are_converted_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    main_path, inbox_path = db.sqlite_path(settings.database_url), db.inbox_path(settings.database_url)
    assert main_path is not None and inbox_path is not None
    _none_file(main_path)
    _none_file(inbox_path)
    before = size(inbox_path)
    with caplog.at_level(logging.INFO, logger="stackwatch.disk"):
        open_services(settings).close()
    assert mode(main_path) == 2 and mode(inbox_path) == 2
    assert size(inbox_path) < before  # the 300 deleted rows' pages are gone
    converted = [r.getMessage() for r in caplog.records if "converted" in r.getMessage()]
    assert len(converted) == 2 and "incremental auto-vacuum" in converted[0]


@SQLITE_ONLY
def test_a_large_file_is_left_with_a_warning_and_converted_by_the_command(
    settings: Settings, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    path = db.sqlite_path(settings.database_url)
    assert path is not None
    raw = services.engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        driver.executescript("PRAGMA auto_vacuum=NONE; VACUUM;")  # as an older version left it
    finally:
        raw.close()
    assert mode(path) == 0
    with caplog.at_level(logging.WARNING, logger="stackwatch.disk"):
        assert not disk.ensure_incremental(services.engine, path, "database", max_bytes=1024)
    assert mode(path) == 0
    assert "`stackwatch db vacuum`" in caplog.text and str(path) in caplog.text
    services.close()
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    result = runner.invoke(main, ["db", "vacuum", "--data-dir", str(settings.data_dir)], catch_exceptions=True)
    assert result.exit_code == 0, (result.output, result.exception)
    assert mode(path) == 2
    assert "incremental auto-vacuum" in result.output and "inbox" in result.output


def test_db_commands_on_both_backends(settings: Settings, services: Services) -> None:
    services.close()
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    options = ["--data-dir", str(settings.data_dir), "--database-url", settings.database_url]
    vacuumed = runner.invoke(main, ["db", "vacuum", *options], catch_exceptions=True)
    assert vacuumed.exit_code == 0, (vacuumed.output, vacuumed.exception)
    used = runner.invoke(main, ["db", "usage", *options], env={"STACKWATCH_MAX_DISK_MB": "1000"})
    assert used.exit_code == 0, (used.output, used.exception)
    assert "the store takes" in used.output and "of its 1000 MB" in used.output


# --- reclaim ------------------------------------------------------------------------------------------------------
@SQLITE_ONLY
def test_reclaim_frees_at_most_what_it_is_asked_in_steps(settings: Settings, services: Services) -> None:
    path = db.sqlite_path(settings.database_url)
    assert path is not None
    fill_scratch_table(services.engine, 1200)
    with services.engine.connect() as connection:
        free = disk.free_pages(connection)
        assert free >= 1200
        assert disk.reclaim(connection, 500, step=64) == 500
        assert disk.free_pages(connection) == free - 500
        assert not connection.in_transaction()
        assert disk.reclaim(connection, 10**6) == free - 500
        assert disk.free_pages(connection) == 0
        assert disk.checkpoint(connection)
        with connection.begin(), pytest.raises(RuntimeError, match="outside a transaction"):
            disk.reclaim(connection, 10)
    assert path.stat().st_size < 1200 * 3500  # the file shrank back


def test_reclaim_is_a_no_op_without_free_pages_and_on_postgresql(services: Services) -> None:
    with services.engine.connect() as connection:
        disk.reclaim(connection, 10**6)  # what the migrations left
        assert disk.reclaim(connection, 100) == 0
        assert disk.free_pages(connection) == 0


@SQLITE_ONLY
def test_digest_housekeeping_gives_free_pages_of_the_database_back(settings: Settings, services: Services) -> None:
    fill_scratch_table(services.engine, 4000)
    services.digester.tidy(idle=True)
    with services.engine.connect() as connection:
        # A few MB are kept for the next rows; the rest went back to the disk.
        assert disk.free_pages(connection) <= 2048


# --- the inbox, drained -------------------------------------------------------------------------------------------
@SQLITE_ONLY
def test_a_drained_inbox_gives_its_space_back(stack: Stack) -> None:
    path = db.inbox_path(stack.settings.database_url)
    assert path is not None
    padding = os.urandom(6000).hex()  # 12 kB a body, as sent (sealed: not compressible)
    for _ in range(800):
        send_ok(stack, message_event("filler", extra={"padding": padding}))
    full = size(path)
    assert full > 8 << 20
    assert stack.digest() == 800
    stack.services.inbox.tidy(idle=True)
    assert path.with_name(path.name + "-wal").stat().st_size == 0
    assert size(path) < 1 << 20, (full, size(path))
    send_ok(stack, message_event("after"))  # and the inbox works on
    assert stack.digest() == 1


# --- usage and the limit ------------------------------------------------------------------------------------------
def test_usage_is_the_files_or_the_database_and_is_cached(settings: Settings, services: Services) -> None:
    now = [0.0]
    monitor = disk.DiskUsage(settings.database_url, services.engine, 1 << 30, refresh=2.0, clock=lambda: now[0])
    measured = monitor.current()
    if settings.is_sqlite:
        assert measured == sum(p.stat().st_size for p in disk.store_files(settings.database_url) if p.exists())
        assert not monitor.blocking
    else:
        with psycopg.connect(settings.database_url) as pg:
            row = pg.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None and measured == row[0]
        assert monitor.blocking
    assert measured > 0
    assert monitor.pressure() == measured / (1 << 30) and not monitor.full()
    monitor.limit_bytes = measured  # at the limit: full
    assert monitor.full()
    monitor.limit_bytes = 0
    assert monitor.pressure() == 0.0 and not monitor.full()
    with services.engine.connect() as connection, connection.begin():
        connection.execute(text("CREATE TABLE grows (b TEXT)"))
        connection.execute(text("INSERT INTO grows VALUES (:b)"), [{"b": os.urandom(2000).hex()} for _ in range(500)])
    if settings.is_sqlite:
        assert disk.usage(settings.database_url, services.engine) > measured
    now[0] = 1.9
    assert monitor.current() == measured  # cached
    now[0] = 2.0
    assert monitor.current() > measured


def _big_envelope() -> bytes:
    """~256 kB as sent (the inbox keeps it so), a few kB once digested (stored compressed)."""
    event = message_event("disk filler", extra={"padding": "x" * 250_000})
    return event_envelope(event)


def _send(server: ServerProcess, body: bytes) -> httpx.Response:
    return httpx.post(f"{server.base_url}/api/1/envelope/", content=body, headers={"X-Sentry-Auth": AUTH}, timeout=30)


def _fill_until_refused(server: ServerProcess, settings: Settings, engine: Engine, limit_mb: int) -> int:
    """Send big envelopes until the store passes the limit, then small ones until ingest notices; the count of
    envelopes accepted."""
    accepted = 0
    for _ in range(200):
        if disk.usage(settings.database_url, engine) >= limit_mb << 20:
            break
        assert _send(server, _big_envelope()).status_code == 200
        accepted += 1
    else:
        raise AssertionError("the store did not reach its limit")
    deadline = time.monotonic() + 15  # ingest measures every second (SQLite) or five (PostgreSQL)
    while time.monotonic() < deadline:
        response = _send(server, event_envelope(message_event("small")))
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "60"
            assert response.headers["X-Sentry-Rate-Limits"] == "60::organization"
            assert "disk limit" in response.json()["detail"] and "disk limit" in response.headers["X-Sentry-Error"]
            store = httpx.post(
                f"{server.base_url}/api/1/store/?sentry_key={PYTHON_KEY}",
                content=orjson.dumps(message_event("legacy")),
                timeout=30,
            )
            assert store.status_code == 429 and store.headers["Retry-After"] == "60"
            return accepted
        assert response.status_code == 200
        accepted += 1
        time.sleep(0.1)
    raise AssertionError("ingest never refused")


def _limit_just_above(settings: Settings, engine: Engine, headroom_mb: int) -> int:
    return math.ceil(disk.usage(settings.database_url, engine) / (1 << 20)) + headroom_mb


def _stored(engine: Engine) -> int:
    """Events digested: counted by the issues, since near the limit retention thins the rows themselves."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.coalesce(func.sum(issues.c.event_count), 0))).scalar_one())


def test_ingest_refuses_at_the_limit_and_accepts_once_it_is_raised(
    settings: Settings, services: Services, start_server: ServerFactory
) -> None:
    limit = _limit_just_above(settings, services.engine, 2)
    server = start_server(STACKWATCH_MAX_DISK_MB=str(limit))
    accepted = _fill_until_refused(server, settings, services.engine, limit)
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert f"stackwatch_disk_limit_bytes {limit << 20}" in metrics and "stackwatch_disk_bytes " in metrics
    server.stop()
    server.env["STACKWATCH_MAX_DISK_MB"] = str(limit + 100)
    server.start()
    assert _send(server, event_envelope(message_event("after"))).status_code == 200
    server.wait_digested()
    assert _stored(services.engine) == accepted + 1  # nothing accepted was lost


@SQLITE_ONLY
def test_ingest_accepts_again_by_itself_once_the_inbox_is_drained(
    settings: Settings, services: Services, start_server: ServerFactory
) -> None:
    """Ingest alone in its process (no digest there) measures for itself, and notices the space coming back."""
    limit = _limit_just_above(settings, services.engine, 3)
    server = start_server(STACKWATCH_MAX_DISK_MB=str(limit), STACKWATCH_ROLE="ingest")
    accepted = _fill_until_refused(server, settings, services.engine, limit)
    assert services.digester.drain() == accepted  # the digest, elsewhere, takes what was accepted
    services.inbox.tidy(idle=True)
    assert disk.usage(settings.database_url, services.engine) < limit << 20
    deadline = time.monotonic() + 10
    while (response := _send(server, event_envelope(message_event("back", event_id=new_id())))).status_code == 429:
        assert time.monotonic() < deadline, "ingest did not accept again"
        time.sleep(0.2)
    assert response.status_code == 200
    assert services.digester.drain() == 1


def test_no_limit_by_default(settings: Settings) -> None:
    assert settings.max_disk_mb == 0
    assert replace(settings, max_disk_mb=5).max_disk_mb == 5
