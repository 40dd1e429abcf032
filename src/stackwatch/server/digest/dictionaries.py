"""zstd dictionaries per project: trained from the project's stored payloads, used to compress new ones.

Events of one project look alike — the same SDK, contexts, modules, stack frames with their source lines — so
zstd alone, which sees one event at a time, keeps re-encoding what every event repeats. A dictionary trained on
the project's own recent payloads holds those repeats once: in bench/storage.py a payload falls from ~1,600 to
~330 bytes (Python sentry-sdk events) and from ~2,800 to ~250 (Node), for the price of one 64 KiB row.

* **When.** In the digest's housekeeping, between batches, at most one project per call (training takes
  0.1-0.5 s): a project with at least :attr:`DictionaryPolicy.train_after` events and no dictionary gets one;
  a project gets a new one when :attr:`~DictionaryPolicy.retrain_after` more events arrived since, or when its
  newest payloads compress :attr:`~DictionaryPolicy.degraded` times worse than the dictionary did on payloads
  held out of its training (new releases, new issues, new SDK versions).
* **Agreement between processes.** A dictionary's id is its row id and is written into the frame of every
  payload compressed with it; rows never change. A new row's id is one more than the highest: two processes that
  train at once both try the same id, one insert fails on the primary key and that process drops its dictionary.
  Each digester compresses with the newest dictionary of each project it knows, and looks for newer ones every
  :data:`REFRESH_SECONDS` and right after training one itself. A payload compressed with a dictionary a moment
  older than another process's newest is read just as well.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import zstandard
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from stackwatch.server.storage.payloads import PayloadUnreadable, load_dictionary, read_payload
from stackwatch.server.storage.schema import compression_dicts, events, issues

__all__ = ["DictionaryPolicy", "PayloadCompressor", "maintain", "train"]

log = logging.getLogger("stackwatch.digest")

LEVEL = 3  # zstd level: ~1,500 events/s of digest throughput spend a few percent of their CPU on it
REFRESH_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class DictionaryPolicy:
    """When to train and how: the defaults were chosen with bench/storage.py (see bench/README.md)."""

    # 200 samples already give ~4.5x smaller payloads than none; 500 are within a few percent of 5,000.
    train_after: int = 500
    # Another dictionary after this many more events of the project, though the old one still does well.
    retrain_after: int = 50_000
    # Or when the newest payloads compress this much worse than the dictionary did at training.
    degraded: float = 1.3
    # The newest payloads of the project trained on (one in ten held out to measure the ratio): 2,000 train in
    # ~0.5 s and compress no worse than 5,000.
    samples: int = 2_000
    # 64 KiB: 32 KiB is ~3 % worse, 110 KiB no better.
    dict_bytes: int = 64 << 10
    # How many of the newest payloads are looked at to tell whether the dictionary degraded.
    probe: int = 200


class PayloadCompressor:
    """Compresses payloads with each project's newest dictionary (or none), as known to this process."""

    def __init__(self) -> None:
        self._plain = zstandard.ZstdCompressor(level=LEVEL)
        self._by_project: dict[int, tuple[int, zstandard.ZstdCompressor]] = {}
        self.refreshed = float("-inf")  # time.monotonic() of the last refresh

    def compress(self, project_id: int, data: bytes) -> bytes:
        entry = self._by_project.get(project_id)
        return (entry[1] if entry else self._plain).compress(data)

    def newest(self, project_id: int) -> int:
        """The id of the dictionary new payloads of the project are compressed with; 0 for none."""
        entry = self._by_project.get(project_id)
        return entry[0] if entry else 0

    def refresh(self, connection: Connection) -> None:
        """Take the newest dictionary of each project (rows other processes may have written meanwhile)."""
        query = select(compression_dicts.c.project_id, func.max(compression_dicts.c.id)).group_by(
            compression_dicts.c.project_id
        )
        newest = {int(project): int(dict_id) for project, dict_id in connection.execute(query)}
        for project_id, dict_id in newest.items():
            if self.newest(project_id) != dict_id:
                data = load_dictionary(connection, dict_id)
                if data is not None:
                    data.precompute_compress(level=LEVEL)
                    self._by_project[project_id] = (dict_id, zstandard.ZstdCompressor(level=LEVEL, dict_data=data))
        for project_id in set(self._by_project) - set(newest):  # the project was deleted
            del self._by_project[project_id]
        self.refreshed = time.monotonic()


def _event_count(connection: Connection, project_id: int) -> int:
    """Events the project ever had, from the issues' counters (no scan of the events)."""
    query = select(func.coalesce(func.sum(issues.c.event_count), 0)).where(issues.c.project_id == project_id)
    return int(connection.execute(query).scalar_one())


def _newest_payloads(connection: Connection, project_id: int, limit: int) -> list[bytes]:
    # ``+ 0``: walk the primary key from the newest row down, not an index on project_id and then a sort of all
    # the project's events; the newest events of a project that is digesting are near the end.
    query = (
        select(events.c.payload).where(events.c.project_id + 0 == project_id).order_by(events.c.id.desc()).limit(limit)
    )
    return [bytes(payload) for payload in connection.execute(query).scalars()]


def _ratio(frames: list[bytes], raw_sizes: list[int]) -> float:
    return sum(map(len, frames)) / max(sum(raw_sizes), 1)


def _current_ratio(payloads: list[bytes]) -> float | None:
    """Compressed/raw size of payloads, from their frame headers (which record the raw size) alone."""
    sizes = []
    for payload in payloads:
        size = zstandard.get_frame_parameters(payload).content_size
        if size <= 0:  # unknown (0 when not written; ZSTD_CONTENTSIZE_UNKNOWN otherwise)
            return None
        sizes.append(size)
    return _ratio(payloads, sizes) if sizes else None


def _due(connection: Connection, project_id: int, policy: DictionaryPolicy) -> bool:
    """Whether the project should get a (new) dictionary now."""
    newest = connection.execute(
        select(compression_dicts.c.event_count, compression_dicts.c.ratio)
        .where(compression_dicts.c.project_id == project_id)
        .order_by(compression_dicts.c.id.desc())
        .limit(1)
    ).first()
    count = _event_count(connection, project_id)
    if newest is None:
        return count >= policy.train_after
    if count - newest.event_count >= policy.retrain_after:
        return True
    if count - newest.event_count < policy.probe:
        return False
    probed = _current_ratio(_newest_payloads(connection, project_id, policy.probe))
    return probed is not None and probed > newest.ratio * policy.degraded


def train(connection: Connection, project_id: int, policy: DictionaryPolicy, *, now: float) -> dict[str, Any] | None:
    """A dictionary trained on the project's newest payloads, as the row to store; ``None`` if there is none.

    Its id is one more than the highest stored: inserting the row fails with ``IntegrityError`` when another
    process stored one with that id first.
    """
    count = _event_count(connection, project_id)
    samples: list[bytes | bytearray | memoryview] = []
    for payload in _newest_payloads(connection, project_id, policy.samples):
        try:
            samples.append(read_payload(connection, payload))
        except PayloadUnreadable:
            continue
    if len(samples) < min(policy.train_after, policy.samples):
        return None
    held_out, training = samples[::10], [s for index, s in enumerate(samples) if index % 10]
    highest = connection.execute(select(func.coalesce(func.max(compression_dicts.c.id), 0))).scalar_one()
    dict_id = int(highest) + 1
    try:
        trained = zstandard.train_dictionary(policy.dict_bytes, training, dict_id=dict_id, level=LEVEL)
    except zstandard.ZstdError as exc:  # too few or too uniform samples for a dictionary of that size
        log.info("no compression dictionary for project %d: %s", project_id, exc)
        return None
    compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=trained)
    ratio = _ratio([compressor.compress(sample) for sample in held_out], [len(sample) for sample in held_out])
    return {
        "id": dict_id,
        "project_id": project_id,
        "created_at": now,
        "data": trained.as_bytes(),
        "samples": len(training),
        "event_count": count,
        "ratio": ratio,
    }


def maintain(
    engine: Engine, compressor: PayloadCompressor, project_ids: set[int], policy: DictionaryPolicy
) -> int | None:
    """Train one dictionary for the first of ``project_ids`` that is due one; the new id, if any.

    Then (and every :data:`REFRESH_SECONDS` anyway) ``compressor`` takes the newest dictionaries.
    """
    trained = None
    for project_id in sorted(project_ids):
        with engine.connect() as connection:
            if not _due(connection, project_id, policy):
                continue
        started = time.monotonic()
        # Trained outside the write transaction (it takes up to half a second); only the insert takes the lock.
        with engine.connect() as connection:
            row = train(connection, project_id, policy, now=time.time())
        if row is not None:
            try:
                with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
                    connection.execute(insert(compression_dicts).values(**row))
                trained = int(row["id"])
            except IntegrityError:  # another process stored one first: it is taken with the refresh below
                log.info("project %d: another process stored a compression dictionary first", project_id)
        if trained is not None:
            log.info(
                "project %d: compression dictionary %d trained in %.2f s",
                project_id,
                trained,
                time.monotonic() - started,
            )
        break
    if trained is not None or time.monotonic() - compressor.refreshed >= REFRESH_SECONDS:
        with engine.connect() as connection:
            compressor.refresh(connection)
    return trained
