"""No envelope is readable at rest: sealed in the inbox while it waits, and no byte of it left once digested."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sqlalchemy import func, select

from stackwatch.server.config import Settings
from stackwatch.server.services import Services
from stackwatch.server.storage.schema import events, inbox
from stackwatch.server.storage.sealing import MAGIC, Sealer
from tests.conftest import ServerFactory, Stack
from tests.raw_support import Planted, planted, post, scan, scan_until_clean, stored_inbox_bodies, wait_for
from tests.support import AUTH


def _stored(services: Services, event_ids: list[str]) -> int:
    with services.engine.connect() as connection:
        query = select(func.count()).select_from(events).where(events.c.event_id.in_(event_ids))
        return int(connection.execute(query).scalar_one())


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    """Positive control: planted secrets in a file of a folder are found, in a plain and in a gunzipped body."""
    item, zipped = planted("a"), planted("b")
    (tmp_path / "plain.bin").write_bytes(b"prefix" + item.body + b"suffix")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "x-wal").write_bytes(gzip.decompress(zipped.gzipped()))
    found = scan(tmp_path, item.needles + zipped.needles)
    assert set(found) == set(item.needles + zipped.needles)
    assert found[zipped.needles[0]] == ["x-wal"]


def test_no_planted_secret_remains_in_the_data_directory(
    start_server: ServerFactory, services: Services, settings: Settings
) -> None:
    """The audit's case: after digest every planted secret was still readable in the inbox's -wal file."""
    server = start_server()
    plain = [planted(str(i)) for i in range(5)]
    zipped = planted("z")
    for item in plain:
        post(server.base_url, item)
    post(server.base_url, zipped, gzipped=True)
    server.wait_digested()
    every: list[Planted] = [*plain, zipped]
    wait_for(lambda: _stored(services, [item.event_id for item in every]) == len(every))
    # The secrets as sent, and a piece of the gzip body as sent, in case anything kept the body undecoded.
    needles = [needle for item in every for needle in item.needles] + [zipped.gzipped()[10:42]]
    assert scan_until_clean(settings.data_dir, needles) == {}
    server.stop()
    assert scan(settings.data_dir, needles) == {}


def test_a_waiting_envelope_is_sealed(stack: Stack, settings: Settings) -> None:
    """Before its digest an envelope is ciphertext at rest: in the inbox's table and in every file (WAL too)."""
    item = planted()
    response = stack.client.post("/api/1/envelope/", content=item.body, headers={"X-Sentry-Auth": AUTH})
    assert response.status_code == 200, response.text
    (body,) = stored_inbox_bodies(settings.database_url)
    assert body.startswith(MAGIC)
    assert all(needle not in body for needle in item.needles)
    assert Sealer(settings.secret_key).open(body, 1) == item.body
    if settings.is_sqlite:
        assert scan(settings.data_dir, item.needles) == {}
    assert stack.digest() == 1
    # PostgreSQL: the digest deleted the row in its transaction (its dead tuple holds ciphertext only).
    # SQLite: the row is gone from the inbox file as well.
    assert stored_inbox_bodies(settings.database_url) == []
    with stack.services.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(inbox)).scalar_one() == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_sealed_byte_remains_once_digested(start_server: ServerFactory, settings: Settings) -> None:
    """Even the ciphertext leaves the SQLite inbox's files within seconds of the digest (WAL checkpointed and
    truncated, freed pages zeroed), not only at the next clean stop."""
    ingest = start_server(STACKWATCH_ROLE="ingest")  # accepts, never digests: the sealed rows can be read
    for i in range(3):
        post(ingest.base_url, planted(str(i)))
    ingest.stop()
    sealed = stored_inbox_bodies(settings.database_url)
    assert len(sealed) == 3
    needles = [body[len(MAGIC) : len(MAGIC) + 40] for body in sealed]  # nonce and the first ciphertext bytes
    assert set(scan(settings.data_dir, needles)) == set(needles)  # positive control: they are there now
    server = start_server()
    server.wait_digested()
    assert scan_until_clean(settings.data_dir, needles) == {}
