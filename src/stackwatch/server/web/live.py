"""Live updates: Server-Sent Events that tell an open page its data changed, so it fetches the changed part.

A stream sends ``event: changed`` when the *version* of what its page shows (a few numbers: an issue's counts and
status, or a project's issue counts) differs from the one the page was drawn with, which the page passes as
``?since=``. The page then asks for the changed fragment with htmx; the stream never carries event data.

Versions are not read on every tick of every stream: the digest's stored-event counter (one row of
``digest_state``) is read at most once a second for all streams of the process together (``Pulse``), and a stream
reads its own version when that counter moved, or every ``recheck`` seconds (status changes made by people): every
tick for an issue (one row by its key), every ``RECHECK`` seconds for a project's list (an aggregate).
Streams end when the client goes away or the server shuts down (``Live.close``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
from sqlalchemy import Connection, Engine, select
from starlette.requests import Request
from starlette.responses import StreamingResponse

from stackwatch.server.storage.schema import digest_state

__all__ = ["Live", "Pulse", "event_stream"]

TICK = 1.0  # seconds between checks of one stream
PULSE_EVERY = 1.0  # the shared counter is read at most this often
RECHECK = 10.0  # a stream reads its own version at least this often
KEEP_ALIVE = 15.0  # a comment line this often keeps proxies from closing an idle stream
COUNTER = "stackwatch_digest_events_total"

Version = Callable[[Connection], str | None]


class Pulse:
    """The digest's stored-event counter, read at most once a second for every stream of the process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._value = -1
        self._read_at = -PULSE_EVERY

    def fresh(self) -> int | None:
        """The value read less than a second ago, without waiting; ``None`` when it is due to be read again."""
        return self._value if time.monotonic() - self._read_at < PULSE_EVERY else None

    def value(self) -> int:
        """The counter, read from the database when the last read is a second old (blocks: run it in a thread)."""
        with self._lock:
            if time.monotonic() - self._read_at >= PULSE_EVERY:
                with self._engine.connect() as connection:
                    found = connection.execute(
                        select(digest_state.c.value).where(digest_state.c.name == COUNTER)
                    ).scalar()
                self._value, self._read_at = int(found or 0), time.monotonic()
            return self._value


class Live:
    """The streams of one app: the shared pulse and the switch that ends them all at shutdown."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pulse = Pulse(engine)
        self.closing = threading.Event()
        self.open_streams = 0

    def close(self) -> None:
        self.closing.set()

    def version(self, read: Version) -> str | None:
        with self.engine.connect() as connection:
            return read(connection)


def _message(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


async def _changes(live: Live, request: Request, read: Version, since: str, recheck: float) -> AsyncIterator[str]:
    live.open_streams += 1
    try:
        yield "retry: 3000\n\n"
        seen, pulse = since, -1
        checked = sent = time.monotonic()
        first = True
        while not live.closing.is_set() and not await request.is_disconnected():
            moment = time.monotonic()
            current = live.pulse.fresh()
            if current is None:  # one stream of the process reads it for all; the others find it fresh
                current = await anyio.to_thread.run_sync(live.pulse.value)
            if first or current != pulse or moment - checked >= recheck:
                first, pulse, checked = False, current, moment
                version = await anyio.to_thread.run_sync(live.version, read)
                if version is None:  # the issue or project is gone, or the session no longer sees it
                    yield _message("gone", "")
                    return
                if version != seen:
                    seen, sent = version, moment
                    yield _message("changed", version)
            if moment - sent >= KEEP_ALIVE:
                sent = moment
                yield ": keep-alive\n\n"
            await asyncio.sleep(TICK)
    finally:
        live.open_streams -= 1


def event_stream(
    live: Live, request: Request, read: Version, since: str, *, recheck: float = RECHECK
) -> StreamingResponse:
    """A ``text/event-stream`` answer that says ``changed`` whenever ``read`` gives a version other than ``since``.

    ``recheck``: how often ``read`` runs when the digest stored nothing (changes made by people); a cheap ``read``
    (one row by its key) may run on every tick.
    """
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    changes = _changes(live, request, read, since, recheck)
    return StreamingResponse(changes, media_type="text/event-stream", headers=headers)
