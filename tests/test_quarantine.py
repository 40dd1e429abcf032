"""An envelope that the digest cannot store, even alone, is quarantined instead of stopping the digest."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import func, select

from stackwatch.server.digest import store
from stackwatch.server.digest.worker import DigestWorker
from stackwatch.server.storage.schema import events, quarantine
from tests.conftest import PYTHON_KEY, Stack


def _envelope(event_id: str, message: str) -> bytes:
    header = orjson.dumps({"event_id": event_id})
    payload = orjson.dumps({"event_id": event_id, "message": message, "level": "error"})
    item = orjson.dumps({"type": "event", "length": len(payload)})
    return b"\n".join([header, item, payload]) + b"\n"


def test_poison_envelope_is_quarantined_and_the_rest_digested(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = store.write_batch

    def write_batch(connection, batch, compressor):  # type: ignore[no-untyped-def]
        if any(record.event.data.get("logentry", {}).get("message") == "poison" for record in batch.events):
            raise RuntimeError("cannot store this one")
        return real_write(connection, batch, compressor)

    monkeypatch.setattr("stackwatch.server.digest.worker.write_batch", write_batch)
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={PYTHON_KEY}"}
    ids = [f"{i:032x}" for i in range(1, 8)]
    for event_id in ids:
        message = "poison" if event_id == ids[3] else f"fine {event_id}"
        response = stack.client.post("/api/1/envelope/", content=_envelope(event_id, message), headers=headers)
        assert response.status_code == 200

    worker = DigestWorker(stack.services.digester, stack.services.inbox, poll_interval=0.02)
    monkeypatch.setattr(DigestWorker, "_failed", lambda self, failures: None)  # no back-off sleeps in the test
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stack.services.inbox.backlog() > 0:
            time.sleep(0.05)
    finally:
        worker.stop()
    with stack.services.engine.connect() as connection:
        stored = set(connection.execute(select(events.c.event_id)).scalars())
        quarantined = connection.execute(select(quarantine.c.body, quarantine.c.error)).all()
        assert connection.execute(select(func.count()).select_from(events)).scalar_one() == 6
    assert stored == set(ids) - {ids[3]}
    assert len(quarantined) == 1
    assert ids[3].encode() in quarantined[0].body
    assert "cannot store this one" in quarantined[0].error
