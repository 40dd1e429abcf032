"""Envelopes with planted secrets, and a byte scan of the data directory for them."""

from __future__ import annotations

import gzip
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from stackwatch.server.storage import db
from tests.support import AUTH, envelope


@dataclass(frozen=True)
class Planted:
    """An envelope whose event carries secrets that redaction removes, and the byte strings to look for."""

    event_id: str
    body: bytes  # the envelope as sent, uncompressed
    needles: list[bytes]  # the secrets as plain bytes: none may be found at rest once it is digested

    def gzipped(self) -> bytes:
        return gzip.compress(self.body)


def planted(label: str = "") -> Planted:
    """Secrets of four kinds, each random so that nothing else on disk can hold it by chance."""
    password = f"pw{label}{secrets.token_hex(12)}"
    bearer = f"bt{label}{secrets.token_hex(16)}"
    url_password = f"up{label}{secrets.token_hex(10)}"
    api_key = f"ak{label}{secrets.token_hex(14)}"
    event_id = secrets.token_hex(16)
    event = {
        "event_id": event_id,
        "platform": "python",
        "level": "error",
        "message": f"POST /hooks failed with Authorization: Bearer {bearer}",
        "extra": {"password": password, "target": f"https://hooks:{url_password}@db.example.com/x"},
        "request": {"url": "https://api.example.com/run", "headers": {"X-Api-Key": api_key}},
    }
    body = envelope(({"type": "event"}, orjson.dumps(event)), header={"event_id": event_id})
    needles = [s.encode() for s in (password, bearer, url_password, api_key)]
    assert all(needle in body for needle in needles)
    return Planted(event_id, body, needles)


def post(base_url: str, item: Planted, *, gzipped: bool = False) -> None:
    headers = {"X-Sentry-Auth": AUTH, "Content-Type": "application/x-sentry-envelope"}
    content = item.body
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        content = item.gzipped()
    response = httpx.post(f"{base_url}/api/1/envelope/", content=content, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def scan(folder: Path, needles: list[bytes]) -> dict[bytes, list[str]]:
    """Each needle found in any file under ``folder`` (every file, WAL and SHM included), with where."""
    found: dict[bytes, list[str]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a -wal or -shm removed while we looked
            continue
        for needle in needles:
            if needle in data:
                found.setdefault(needle, []).append(path.name)
    return found


def scan_until_clean(folder: Path, needles: list[bytes], seconds: float = 20.0) -> dict[bytes, list[str]]:
    """Scan until nothing is found or ``seconds`` have passed; the last findings."""
    deadline = time.monotonic() + seconds
    while True:
        found = scan(folder, needles)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def stored_inbox_bodies(database_url: str) -> list[bytes]:
    """The inbox's bodies exactly as they are at rest, read past Stackwatch (SQLite file or PostgreSQL table)."""
    path = db.inbox_path(database_url)
    if path is not None:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            return [bytes(row[0]) for row in connection.execute("SELECT body FROM inbox ORDER BY id")]
    import psycopg

    with psycopg.connect(database_url) as connection:
        return [bytes(row[0]) for row in connection.execute("SELECT body FROM inbox ORDER BY id")]


def wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
