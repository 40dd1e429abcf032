"""The quarantine: envelopes the digest could not store even alone, kept sealed until retried, purged or expired.

An envelope lands here when digesting it fails on its own (a bug, not bad input: bad input is refused at ingest
or skipped item by item) or when its sealed body does not open with the current secret key. Its body stays in
the stored form of the inbox (``sealing.py``), so ``retry`` copies it back unchanged and needs no key, and the
quarantine is never a store of readable envelopes. The error is kept to say why; it went through the value
rules of redaction, because an exception's message can quote what it choked on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, case, delete, func, insert, literal, select, update

from stackwatch.scrub import scrub_text
from stackwatch.server.storage.inbox import Inbox, InboxRow
from stackwatch.server.storage.schema import projects, quarantine
from stackwatch.server.storage.sealing import MAGIC, OVERHEAD, is_sealed

__all__ = ["Entry", "QuarantineError", "entries", "expire", "purge", "put", "retry", "safe_error", "seal_plaintext"]

_MAX_ERROR = 2000


class QuarantineError(LookupError):
    """Ids that name no quarantined envelope; the message lists them."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    project: str
    received_at: float
    quarantined_at: float
    size: int  # bytes of the envelope as sent
    error: str


def safe_error(error: str) -> str:
    """The error as kept and logged: shortened, and with secret-looking values replaced."""
    return scrub_text(error[:_MAX_ERROR])[0]


def put(connection: Connection, row: InboxRow, stored_body: bytes | bytearray, error: str, now: float) -> None:
    """Quarantine one inbox row, with its body in stored (sealed) form."""
    connection.execute(
        insert(quarantine).values(
            inbox_id=row.id,
            project_id=row.project_id,
            received_at=row.received_at,
            client_ip=row.client_ip,
            body=stored_body,
            error=safe_error(error),
            quarantined_at=now,
        )
    )


def entries(connection: Connection) -> list[Entry]:
    """Every quarantined envelope, oldest first, without its body."""
    size = func.length(quarantine.c.body) - case(
        (func.substr(quarantine.c.body, 1, len(MAGIC)) == literal(MAGIC), OVERHEAD), else_=0
    )
    query = (
        select(
            quarantine.c.id,
            quarantine.c.project_id,
            projects.c.slug,
            quarantine.c.received_at,
            quarantine.c.quarantined_at,
            size.label("size"),
            quarantine.c.error,
        )
        .select_from(quarantine.outerjoin(projects, projects.c.id == quarantine.c.project_id))
        .order_by(quarantine.c.id)
    )
    return [
        Entry(r.id, r.slug or f"#{r.project_id} (deleted)", r.received_at, r.quarantined_at, int(r.size), r.error)
        for r in connection.execute(query)
    ]


def _existing(connection: Connection, ids: Sequence[int] | None) -> list[int]:
    query = select(quarantine.c.id).order_by(quarantine.c.id)
    if ids is not None:
        query = query.where(quarantine.c.id.in_(ids))
    found = list(connection.execute(query).scalars())
    missing = sorted(set(ids or ()) - set(found))
    if missing:
        raise QuarantineError(f"no quarantined envelope with id {', '.join(map(str, missing))}")
    return found


def retry(connection: Connection, inbox: Inbox, ids: Sequence[int] | None) -> int:
    """Move envelopes (``None``: all) back into the inbox for another digest; all or none of ``ids``."""
    found = _existing(connection, ids)
    columns = (quarantine.c.project_id, quarantine.c.received_at, quarantine.c.client_ip, quarantine.c.body)
    for start in range(0, len(found), 100):  # a hundred bodies (up to 20 MB each) in memory at a time
        chunk = found[start : start + 100]
        rows = connection.execute(select(*columns).where(quarantine.c.id.in_(chunk)).order_by(quarantine.c.id))
        inbox.requeue(connection, [row._asdict() for row in rows])
        connection.execute(delete(quarantine).where(quarantine.c.id.in_(chunk)))
    return len(found)


def purge(connection: Connection, ids: Sequence[int] | None) -> int:
    """Delete envelopes (``None``: all) for good; all or none of ``ids``."""
    found = _existing(connection, ids)
    for start in range(0, len(found), 500):
        connection.execute(delete(quarantine).where(quarantine.c.id.in_(found[start : start + 500])))
    return len(found)


def expire(connection: Connection, before: float) -> int:
    """Delete envelopes quarantined before ``before`` (a Unix time)."""
    return int(connection.execute(delete(quarantine).where(quarantine.c.quarantined_at < before)).rowcount or 0)


def seal_plaintext(connection: Connection, seal: Callable[[bytes, int], bytearray]) -> int:
    """Seal bodies that an older version quarantined as they were sent."""
    plain = func.substr(quarantine.c.body, 1, len(MAGIC)) != literal(MAGIC)
    ids = list(connection.execute(select(quarantine.c.id).where(plain)).scalars())
    for entry_id in ids:
        row = connection.execute(select(quarantine.c.project_id, quarantine.c.body).where(quarantine.c.id == entry_id))
        project_id, body = row.one()
        if not is_sealed(bytes(body)):
            sealed = seal(bytes(body), project_id)
            connection.execute(update(quarantine).where(quarantine.c.id == entry_id).values(body=sealed))
    return len(ids)
