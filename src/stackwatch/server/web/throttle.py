"""Login throttling: at most ``LIMIT`` failed logins per ``WINDOW`` for one client address and for one email.

Failures are rows in the database, so the limit holds across processes, machines (PostgreSQL) and restarts.
Both counts are checked before the password is: a client over the limit costs no Argon2 work. A successful login
clears the email's count; the address's count runs out with time only, or one account's owner could reset the
count of an attacker guessing other accounts from the same address.
"""

from __future__ import annotations

import hashlib
import math

from sqlalchemy import Connection, delete, insert, select

from stackwatch.server.storage.schema import login_failures

__all__ = ["LIMIT", "WINDOW", "clear_email", "record_failure", "retry_after"]

LIMIT = 10
WINDOW = 15 * 60


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _subjects(address: str, email: str) -> list[tuple[str, str]]:
    return [("ip", _key("ip", address)), ("email", _key("email", email.strip().lower()))]


def retry_after(connection: Connection, address: str, email: str, now: float) -> int | None:
    """Seconds until a login may be tried again, or ``None`` while neither limit is reached."""
    wait = 0.0
    for kind, key in _subjects(address, email):
        recent = connection.execute(
            select(login_failures.c.failed_at)
            .where(
                login_failures.c.kind == kind, login_failures.c.key == key, login_failures.c.failed_at > now - WINDOW
            )
            .order_by(login_failures.c.failed_at.desc())
            .limit(LIMIT)
        ).scalars()
        times = list(recent)
        if len(times) >= LIMIT:  # free again when the LIMIT-th most recent failure leaves the window
            wait = max(wait, times[-1] + WINDOW - now)
    return max(1, math.ceil(wait)) if wait > 0 else None


def record_failure(connection: Connection, address: str, email: str, now: float) -> None:
    rows = [{"kind": kind, "key": key, "failed_at": now} for kind, key in _subjects(address, email)]
    connection.execute(insert(login_failures), rows)
    # Housekeeping on the way: failures older than the window count for nothing.
    connection.execute(delete(login_failures).where(login_failures.c.failed_at <= now - WINDOW))


def clear_email(connection: Connection, email: str) -> None:
    _, key = _subjects("", email)[1]
    connection.execute(delete(login_failures).where(login_failures.c.kind == "email", login_failures.c.key == key))
