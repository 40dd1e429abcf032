"""Whether this process can take work (``/readyz``), and the answer when the database is unavailable.

A disk that fills up or is made read-only after the start leaves the process up (``/healthz``) but every write
failing. ``/readyz`` says so, with the reasons, without writing anything itself: it opens the SQLite files for
writing (which a read-only file or file system refuses), asks PostgreSQL whether it is read-only, and reports the
inbox's last write while it failed (a full disk shows only there). A failure is reported for
``WRITE_FAILURE_SECONDS`` at most: a load balancer that stops sending to an unready node would otherwise never
let it make the successful write that clears it.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from stackwatch.server.services import Services
from stackwatch.server.storage import datadir

__all__ = ["WRITE_FAILURE_SECONDS", "database_unavailable", "readiness", "unavailable_reason"]

log = logging.getLogger("stackwatch")

WRITE_FAILURE_SECONDS = 30.0

_PG_READ_ONLY = "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"


def readiness(services: Services) -> tuple[list[str], int | None]:
    """The reasons this process is not ready (none: ready), and the inbox backlog when it could be counted."""
    reasons = []
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            if connection.dialect.name == "postgresql" and connection.execute(text(_PG_READ_ONLY)).scalar():
                reasons.append("database: read-only (a standby, or default_transaction_read_only is on)")
    except Exception as exc:
        log.warning("readiness check: the database does not answer: %s", datadir.one_line(exc))
        reasons.append(f"database: {unavailable_reason(datadir.one_line(exc))}")
    reasons += datadir.unwritable(services.settings.database_url)
    failure = services.inbox.write_failure
    if failure is not None and (age := time.monotonic() - failure[0]) < WRITE_FAILURE_SECONDS:
        reasons.append(f"inbox: the last write failed {age:.0f} s ago ({unavailable_reason(failure[1])})")
    backlog = None
    try:
        backlog = services.inbox.backlog()
    except Exception as exc:
        log.warning("readiness check: the inbox cannot be read: %s", datadir.one_line(exc))
        reasons.append(f"inbox: {unavailable_reason(datadir.one_line(exc))}")
    return list(dict.fromkeys(reasons)), backlog


def unavailable_reason(message: str) -> str:
    """A database error in a few words that reveal nothing of the installation (host names, paths)."""
    message = message.lower()
    if "readonly" in message or "read-only" in message:
        return "read-only"
    if "full" in message or "no space" in message:
        return "the disk is full"
    if "locked" in message or "busy" in message:
        return "busy"
    if "i/o error" in message:
        return "cannot be written (I/O error)"
    if "malformed" in message or "not a database" in message:
        return "damaged"
    return "does not answer"


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """``503`` with the reason instead of a ``500``: the database cannot be reached or written just now."""
    message = datadir.one_line(exc) if isinstance(exc, DBAPIError) else str(exc)
    log.warning("%s %s: the database is unavailable: %s", request.method, request.url.path, message)
    reason = f"the database is unavailable: {unavailable_reason(message)}"
    headers = {"Retry-After": "5"}
    if request.url.path.startswith("/api/"):  # the REST API and ingest, whose SDKs log X-Sentry-Error
        return JSONResponse({"detail": reason}, status_code=503, headers={**headers, "X-Sentry-Error": reason})
    return PlainTextResponse(f"Service unavailable: {reason}. Retry in a moment.\n", status_code=503, headers=headers)
