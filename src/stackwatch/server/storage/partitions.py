"""PostgreSQL: the events table partitioned by week of ``received_at``, made ahead and dropped when old.

Events are by far the largest table, and the only one whose rows expire by age. Deleting expired rows one by
one leaves dead tuples for VACUUM, index bloat, and a long-running DELETE on the hottest table; dropping a
partition frees its disk at once, in a statement that takes milliseconds whatever its size. SQLite keeps a plain
table (nothing here runs there).

One partition per week (Monday 00:00 UTC to the next), not per day: with the default retention of 90 days a
database holds about 14 of them instead of 90, and every query that is not bounded by ``received_at`` (an
issue's latest events, an event by id) probes each partition's index, and plans over each. A week is also a fine
enough grain to drop by: an event is dropped at most 7 days after it expired, about 8 % of 90 days of disk.

The partitions for the current week and the ``AHEAD`` next ones always exist, so the digest's inserts find theirs;
a DEFAULT partition takes anything else (a server clock far off, events received while the worker was away for
weeks, a seeder's past data), so that an insert never fails for lack of a partition. PostgreSQL refuses to create
a partition whose range holds rows of the DEFAULT partition: ``create_partition`` moves such rows into the new
partition in the same transaction. Rows of the DEFAULT partition older than the retention are deleted one by one.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import OperationalError

from stackwatch.server.storage.schema import projects

__all__ = [
    "AHEAD",
    "DEFAULT_PARTITION",
    "PERIOD",
    "Partition",
    "create_partition",
    "ensure_default",
    "is_partitioned",
    "keep_days",
    "maintain",
    "partition_name",
    "partitions",
    "period_start",
]

log = logging.getLogger("stackwatch.storage.partitions")

DAY = 86_400.0
PERIOD = 7 * DAY
AHEAD = 4  # weeks made ahead of the current one: a worker stopped for up to four weeks still finds them
DEFAULT_PARTITION = "events_default"
_FIRST_MONDAY = 4 * DAY  # 1970-01-05 00:00 UTC: weeks start on Mondays
_MAINTENANCE_LOCK = 7316002  # pg_advisory_xact_lock key (db.migrate holds 7316001)
# Creating, attaching or dropping a partition locks the events table against every reader and writer while it
# waits for the queries already running on it: it gives up after this, and is tried again at the next turn.
_LOCK_TIMEOUT = "2s"
_BOUND = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    lower: float | None  # None for the DEFAULT partition
    upper: float | None


def period_start(moment: float) -> float:
    """The start of the week (Monday 00:00 UTC) that holds ``moment``, in epoch seconds."""
    return _FIRST_MONDAY + math.floor((moment - _FIRST_MONDAY) / PERIOD) * PERIOD


def partition_name(lower: float) -> str:
    """``events_p20260105`` for the week starting on Monday 5 January 2026."""
    return "events_p" + datetime.fromtimestamp(lower, UTC).strftime("%Y%m%d")


def is_partitioned(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('events')")).scalar()
    return kind == "p"


def _bound(value: str) -> float:
    value = value.strip().strip("'")
    if value.upper() in ("MINVALUE", "MAXVALUE"):  # not made by Stackwatch, but allowed by PostgreSQL
        return -math.inf if value.upper() == "MINVALUE" else math.inf
    return float(value)


def partitions(connection: Connection) -> list[Partition]:
    """The partitions of events with their ranges, read from the catalog (whatever their names), oldest first."""
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('events')"
        )
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUND.fullmatch(bound)
        if match is None:  # DEFAULT
            found.append(Partition(name, None, None))
        else:
            found.append(Partition(name, _bound(match.group(1)), _bound(match.group(2))))
    return sorted(found, key=lambda p: (p.lower is not None, p.lower or 0.0))


def _columns(connection: Connection) -> str:
    names = connection.execute(
        text(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = to_regclass('events')"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
    ).scalars()
    return ", ".join(names)


def _default(connection: Connection) -> str | None:
    return next((p.name for p in partitions(connection) if p.lower is None), None)


def ensure_default(connection: Connection) -> bool:
    """Create the DEFAULT partition if there is none; whether it was created."""
    if _default(connection) is not None:
        return False
    connection.exec_driver_sql(f'CREATE TABLE "{DEFAULT_PARTITION}" PARTITION OF events DEFAULT')
    return True


def create_partition(connection: Connection, lower: float, upper: float) -> str:
    """Create the partition for ``[lower, upper)``, taking over the rows of that range in the DEFAULT partition."""
    name = partition_name(lower)
    bounds = f"FOR VALUES FROM ({float(lower)!r}) TO ({float(upper)!r})"
    default = _default(connection)
    in_range = "received_at >= :lower AND received_at < :upper"
    stray = (
        default is not None
        and connection.execute(
            text(f'SELECT EXISTS (SELECT 1 FROM "{default}" WHERE {in_range})'), {"lower": lower, "upper": upper}
        ).scalar()
    )
    if not stray:
        connection.exec_driver_sql(f'CREATE TABLE "{name}" PARTITION OF events {bounds}')
        return name
    # Built beside the table, filled from the DEFAULT partition, then attached: attaching builds its indexes
    # and foreign keys as the parent's, and finds no row of its range left in the DEFAULT partition.
    columns = _columns(connection)
    connection.exec_driver_sql(f'CREATE TABLE "{name}" (LIKE events INCLUDING DEFAULTS)')
    moved = connection.execute(
        text(
            f'WITH moved AS (DELETE FROM "{default}" WHERE {in_range} RETURNING {columns})'
            f' INSERT INTO "{name}" ({columns}) SELECT {columns} FROM moved'
        ),
        {"lower": lower, "upper": upper},
    ).rowcount
    connection.exec_driver_sql(f'ALTER TABLE events ATTACH PARTITION "{name}" {bounds}')
    log.warning("moved %d events from the DEFAULT partition into the new partition %s", moved, name)
    return name


def _step(connection: Connection, what: str, action: Callable[[], object]) -> bool:
    """Run one DDL step in a savepoint; a lock not had in time skips it until the next turn."""
    try:
        with connection.begin_nested():
            action()
        return True
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        log.warning("partition maintenance: %s postponed, the events table was busy", what)
        return False


def _forget(connection: Connection, table: str, before: float | None = None) -> None:
    """Before events of ``table`` (received before ``before``, or all) go wholesale: lower their issues' stored
    counters, delete their attachments.

    The retention pass has normally deleted them row by row already (every project's age limit is at most
    ``keep_days``); this keeps the counters exact when it has not, e.g. after the worker was stopped for a while.
    """
    chosen = "TRUE" if before is None else "gone.received_at < :before"
    params = {} if before is None else {"before": before}
    connection.execute(
        text(
            "UPDATE issues SET stored_events = issues.stored_events - counted.n, "
            "stored_bytes = issues.stored_bytes - counted.size "
            "FROM (SELECT gone.issue_id, count(*) AS n, coalesce(sum(length(gone.payload)), 0) AS size "
            f'FROM "{table}" AS gone WHERE {chosen} GROUP BY gone.issue_id) AS counted '
            "WHERE issues.id = counted.issue_id"
        ),
        params,
    )
    connection.execute(
        text(
            f'DELETE FROM attachments USING "{table}" AS gone WHERE {chosen} '
            "AND attachments.project_id = gone.project_id AND attachments.event_id = gone.event_id"
        ),
        params,
    )


def _drop(connection: Connection, name: str) -> None:
    _forget(connection, name)
    connection.exec_driver_sql(f'DROP TABLE "{name}"')


def maintain(connection: Connection, now: float, keep_days: float) -> tuple[int, int]:
    """Create the partitions of this week and the ``AHEAD`` next ones, drop those wholly older than
    ``now - keep_days``; return (created, dropped). Runs in the caller's transaction; a no-op on SQLite, on an
    events table that is not partitioned, and while another process is at it."""
    if not is_partitioned(connection):
        return 0, 0
    if not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _MAINTENANCE_LOCK}).scalar():
        return 0, 0
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
    created = 0
    if _default(connection) is None and _step(connection, "the DEFAULT partition", partial(ensure_default, connection)):
        created += 1
        log.info("created partition %s", DEFAULT_PARTITION)
    existing = [p for p in partitions(connection) if p.lower is not None]
    start = period_start(now)
    for lower in (start + n * PERIOD for n in range(AHEAD + 1)):
        upper = lower + PERIOD
        if any(p.lower is not None and p.upper is not None and p.lower < upper and lower < p.upper for p in existing):
            continue  # covered (or overlapped, by a partition made by hand: left as it is)
        name = partition_name(lower)
        if _step(connection, f"creating {name}", partial(create_partition, connection, lower, upper)):
            created += 1
            log.info("created partition %s", name)
    cutoff = now - keep_days * DAY
    dropped = 0
    for partition in existing:
        if partition.upper is not None and partition.upper <= cutoff:
            name = partition.name
            if _step(connection, f"dropping {name}", partial(_drop, connection, name)):
                dropped += 1
                log.info("dropped partition %s: all its events are older than %g days", name, keep_days)
    default = _default(connection)
    if default is not None:
        _forget(connection, default, before=cutoff)
        expired = connection.execute(
            text(f'DELETE FROM "{default}" WHERE received_at < :cutoff'), {"cutoff": cutoff}
        ).rowcount
        if expired:
            log.info("deleted %d events older than %g days from the DEFAULT partition", expired, keep_days)
    return created, dropped


def keep_days(connection: Connection, default: float) -> float:
    """How long the oldest events must be kept: the longest retention of any project, ``default`` for a project
    without its own (``projects.retention_days`` NULL)."""
    longest = connection.execute(select(func.max(func.coalesce(projects.c.retention_days, default)))).scalar()
    return default if longest is None else float(longest)
