"""An envelope that the digest cannot store, even alone, is quarantined (sealed) instead of stopping the digest;
``stackwatch quarantine list|retry|purge`` deal with it, and old ones expire."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, insert, select

from stackwatch.cli import main
from stackwatch.server.config import Settings
from stackwatch.server.digest import store
from stackwatch.server.digest.worker import DigestWorker
from stackwatch.server.services import Services, open_services
from stackwatch.server.storage.schema import events, quarantine
from stackwatch.server.storage.sealing import MAGIC, Sealer
from tests.conftest import PYTHON_KEY, Stack
from tests.raw_support import Planted, planted, scan
from tests.support import AUTH


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
    body = quarantined[0].body
    assert body.startswith(MAGIC) and ids[3].encode() not in body  # kept sealed, not as sent
    assert ids[3].encode() in Sealer(stack.settings.secret_key).open(body, 1)
    assert "cannot store this one" in quarantined[0].error


# --- a body sealed under another key, and the commands -------------------------------------------------------


@pytest.fixture
def cli(settings: Settings) -> Iterator[tuple[CliRunner, list[str]]]:
    """A runner with none of the caller's settings (the commands need no secret key), and the store options."""
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    yield runner, ["--data-dir", str(settings.data_dir), "--database-url", settings.database_url]


def command(cli: tuple[CliRunner, list[str]], *args: str, code: int = 0) -> Result:
    runner, options = cli
    result = runner.invoke(main, ["quarantine", *args, *options])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def accept(stack: Stack, item: Planted) -> None:
    response = stack.client.post("/api/1/envelope/", content=item.body, headers={"X-Sentry-Auth": AUTH})
    assert response.status_code == 200, response.text


def digest_with_another_key(settings: Settings) -> int:
    """What a server started with a changed STACKWATCH_SECRET_KEY does with the envelopes that waited."""
    other = open_services(replace(settings, secret_key="a-different-secret-key"), migrate=False)
    try:
        return other.digester.drain()
    finally:
        other.close()


def quarantined(services: Services) -> list[tuple[int, bytes, str]]:
    with services.engine.connect() as connection:
        query = select(quarantine.c.id, quarantine.c.body, quarantine.c.error).order_by(quarantine.c.id)
        return [(row.id, bytes(row.body), row.error) for row in connection.execute(query)]


def stored(stack: Stack, event_id: str) -> bool:
    with stack.services.engine.connect() as connection:
        return connection.execute(select(events.c.id).where(events.c.event_id == event_id)).first() is not None


def test_a_body_sealed_under_another_key_is_quarantined_listed_and_retried(
    stack: Stack, cli: tuple[CliRunner, list[str]]
) -> None:
    item = planted()
    accept(stack, item)
    assert digest_with_another_key(stack.settings) == 0  # no crash, nothing stored, the batch went on
    ((entry_id, body, error),) = quarantined(stack.services)
    assert body.startswith(MAGIC) and all(needle not in body for needle in item.needles)
    assert "STACKWATCH_SECRET_KEY" in error
    if stack.settings.is_sqlite:
        assert scan(stack.settings.data_dir, item.needles) == {}
    assert stack.services.inbox.backlog() == 0

    listing = command(cli, "list").output
    assert f"{entry_id}  " in listing and "python" in listing and "STACKWATCH_SECRET_KEY" in listing
    assert f"{len(item.body)} B" in listing  # the size of the envelope as sent
    assert item.event_id not in listing and all(needle.decode() not in listing for needle in item.needles)

    assert command(cli, "retry", str(entry_id)).output.strip() == "1 envelope back in the inbox for the digest"
    assert quarantined(stack.services) == []
    assert stack.digest() == 1  # with the key it was sealed under, it is digestible again
    assert stored(stack, item.event_id)
    assert command(cli, "list").output.strip() == "the quarantine is empty"


def test_purge_and_the_commands_errors(stack: Stack, cli: tuple[CliRunner, list[str]]) -> None:
    for label in ("a", "b", "c"):
        accept(stack, planted(label))
    digest_with_another_key(stack.settings)
    first, second, third = (entry[0] for entry in quarantined(stack.services))

    assert command(cli, "purge", str(first)).output.strip() == "1 envelope deleted"
    missing = command(cli, "purge", str(second), "999", code=1).output.strip()
    assert missing == "Error: no quarantined envelope with id 999"
    assert [entry[0] for entry in quarantined(stack.services)] == [second, third]  # all or nothing
    assert "no quarantined envelope with id 999" in command(cli, "retry", "999", code=1).output
    assert "--all" in command(cli, "retry", code=2).output
    assert "not both" in command(cli, "purge", str(second), "--all", code=2).output
    assert command(cli, "purge", "--all").output.strip() == "2 envelopes deleted"
    assert quarantined(stack.services) == []
    for output in (command(cli, "retry", "--all").output, command(cli, "purge", "--all").output):
        assert output.strip().startswith("0 envelopes")


def _quarantine_row(services: Services, body: bytes, age_days: float) -> None:
    with services.engine.begin() as connection:
        connection.execute(
            insert(quarantine).values(
                inbox_id=1,
                project_id=1,
                received_at=time.time() - age_days * 86_400,
                client_ip=None,
                body=body,
                error="RuntimeError: from an older version",
                quarantined_at=time.time() - age_days * 86_400,
            )
        )


def test_old_quarantine_rows_expire_and_plaintext_ones_are_sealed(stack: Stack, settings: Settings) -> None:
    """The worker deletes envelopes quarantined longer than STACKWATCH_QUARANTINE_DAYS (14) and seals those an
    older version kept as sent; a sealed-again envelope can still be retried."""
    old, recent = planted("old"), planted("new")
    _quarantine_row(stack.services, old.body, age_days=15)
    _quarantine_row(stack.services, recent.body, age_days=13)
    stack.services.digester.tidy(idle=True)
    ((_, body, _),) = quarantined(stack.services)
    assert body.startswith(MAGIC) and all(needle not in body for needle in recent.needles)
    assert Sealer(settings.secret_key).open(body, 1) == recent.body
    shorter = open_services(replace(settings, quarantine_days=1), migrate=False)
    try:
        shorter.digester.tidy(idle=True)
    finally:
        shorter.close()
    assert quarantined(stack.services) == []


def test_inbox_rows_written_before_sealing_are_digested(stack: Stack) -> None:
    """An upgrade loses nothing: plaintext rows left in the inbox by an older version are digested as they are."""
    item = planted()
    row = {"project_id": 1, "received_at": time.time(), "client_ip": None, "body": item.body}
    with stack.services.engine.begin() as connection:
        stack.services.inbox.requeue(connection, [row])
    assert stack.digest() == 1
    assert stored(stack, item.event_id)
    assert quarantined(stack.services) == []
