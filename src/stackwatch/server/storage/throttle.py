"""Throttling of password and token guesses: failures counted per key in fixed windows, in the database.

What is counted (``Limit``):

* ``ADDRESS``: failed logins from one client address, whatever the account — one address spraying a password
  over many accounts;
* ``ACCOUNT``: failed logins for one account *from one address* — one address guessing one account's password;
* ``API``: wrong REST API tokens from one address.

There is no count for an account alone, from every address: anyone could then lock the account's owner out by
failing on purpose. Wrong passwords from one address never stop the right one from another.

The counters are rows in the database, not the memory of one process, so that every process of an install (several
``--role web`` processes behind a load balancer, on one machine or several) shares one count, and a restart does
not reset it.

A login *reserves* its attempt before the password is verified: one statement per key (``INSERT … ON CONFLICT DO
UPDATE … RETURNING``) adds one to the count and returns the new value. That is atomic on both backends (SQLite's
write lock, PostgreSQL's row lock), so N concurrent attempts see N different counts and exactly ``limit`` of them
go on to the Argon2 verification, which runs afterwards outside any transaction and holds no lock. A login that
succeeds gives its reservation back (``release``). A refused attempt is counted too, but a window ends at a fixed
time after its first failure, so hammering does not prolong it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from stackwatch.server.storage.schema import auth_throttle

__all__ = [
    "ACCOUNT",
    "ADDRESS",
    "API",
    "Counter",
    "Limit",
    "api_counter",
    "blocked",
    "login_counters",
    "release",
    "reserve",
]

SWEEP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Limit:
    kind: str
    limit: int  # failures allowed in one window; the next attempt is refused
    window: int  # seconds from a window's first failure to its end


ADDRESS = Limit("address", 30, 15 * 60)
ACCOUNT = Limit("account", 10, 15 * 60)
API = Limit("api", 30, 15 * 60)
LONGEST_WINDOW = max(limit.window for limit in (ADDRESS, ACCOUNT, API))


@dataclass(frozen=True, slots=True)
class Counter:
    limit: Limit
    key: str


def _counter(limit: Limit, *values: str) -> Counter:
    return Counter(limit, hashlib.sha256("\x00".join((limit.kind, *values)).encode()).hexdigest())


def login_counters(address: str, email: str) -> list[Counter]:
    """The counts a login from ``address`` as ``email`` falls under, address first (the order locks are taken in)."""
    return [_counter(ADDRESS, address), _counter(ACCOUNT, email.strip().lower(), address)]


def api_counter(address: str) -> Counter:
    return _counter(API, address)


def _wait(window_start: float, limit: Limit, now: float) -> int:
    return max(1, math.ceil(window_start + limit.window - now))


def reserve(connection: Connection, counters: Sequence[Counter], now: float) -> int | None:
    """Count one attempt under each counter (in a write transaction); the seconds until the window of a counter
    over its limit ends (the attempt is refused), or ``None`` (go on)."""
    wait = 0
    for counter in counters:  # always in the same order, so that PostgreSQL's row locks cannot deadlock
        failures, window_start = _add(connection, counter, now)
        if failures > counter.limit.limit:
            wait = max(wait, _wait(window_start, counter.limit, now))
    _sweep(connection, now)
    return wait or None


def _add(connection: Connection, counter: Counter, now: float) -> tuple[int, float]:
    dialect: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
    expired = auth_throttle.c.window_start <= now - counter.limit.window
    statement = (
        dialect.insert(auth_throttle)
        .values(key=counter.key, window_start=now, failures=1)
        .on_conflict_do_update(
            index_elements=["key"],
            set_={  # both read the row as it was: a window that has ended starts again at this attempt
                "failures": case((expired, 1), else_=auth_throttle.c.failures + 1),
                "window_start": case((expired, now), else_=auth_throttle.c.window_start),
            },
        )
        .returning(auth_throttle.c.failures, auth_throttle.c.window_start)
    )
    row = connection.execute(statement).one()
    return int(row.failures), float(row.window_start)


def _sweep(connection: Connection, now: float) -> None:
    """Drop a few counters whose window has ended. Rows another transaction holds are skipped (PostgreSQL), so
    the sweep never waits for a lock, and two sweeps cannot deadlock."""
    ended = (
        select(auth_throttle.c.key)
        .where(auth_throttle.c.window_start <= now - LONGEST_WINDOW)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    connection.execute(delete(auth_throttle).where(auth_throttle.c.key.in_(ended)))


def release(connection: Connection, counters: Sequence[Counter]) -> None:
    """Give back the attempt ``reserve`` counted, for a login that succeeded: the address's count loses it, the
    account-and-address count starts again."""
    address, *rest = counters
    connection.execute(
        update(auth_throttle)
        .where(auth_throttle.c.key == address.key, auth_throttle.c.failures > 0)
        .values(failures=auth_throttle.c.failures - 1)
    )
    if rest:
        connection.execute(delete(auth_throttle).where(auth_throttle.c.key.in_([c.key for c in rest])))


def blocked(connection: Connection, counter: Counter, now: float) -> int | None:
    """Without counting: the seconds until the counter's window ends when it has reached its limit, else ``None``."""
    row = connection.execute(
        select(auth_throttle.c.failures, auth_throttle.c.window_start).where(auth_throttle.c.key == counter.key)
    ).first()
    if row is None or row.failures < counter.limit.limit or row.window_start <= now - counter.limit.window:
        return None
    return _wait(float(row.window_start), counter.limit, now)
