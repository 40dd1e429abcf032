"""``stackwatch serve`` runs the digest in a supervised child process: restarted when it dies, gone with the server."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import orjson

from tests.conftest import PYTHON_KEY, ServerProcess


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _digest_child(server: ServerProcess, timeout: float = 20.0) -> int:
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _children(server.process.pid):
            if "multiprocessing" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                return child
        time.sleep(0.1)
    raise AssertionError("no digest child process appeared")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def _send(server: ServerProcess) -> str:
    event_id = uuid.uuid4().hex
    payload = orjson.dumps({"event_id": event_id, "message": "from the child test"})
    body = b"\n".join([orjson.dumps({"event_id": event_id}), orjson.dumps({"type": "event"}), payload])
    response = httpx.post(
        f"{server.base_url}/api/1/envelope/", content=body, headers={"X-Sentry-Auth": f"Sentry sentry_key={PYTHON_KEY}"}
    )
    assert response.status_code == 200
    return event_id


def _stored(server: ServerProcess, event_id: str) -> bool:
    headers = {"Authorization": f"Bearer {server.token}"}
    return httpx.get(f"{server.base_url}/api/v1/events/{event_id}", headers=headers).status_code == 200


def test_a_killed_digest_process_is_restarted(server: ServerProcess) -> None:
    first = _digest_child(server)
    os.kill(first, signal.SIGKILL)
    event_id = _send(server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _stored(server, event_id):
        time.sleep(0.1)
    assert _stored(server, event_id), "the event was not digested after the digest process was killed"
    assert _digest_child(server) != first


def test_the_digest_process_goes_with_a_killed_server(server: ServerProcess) -> None:
    child = _digest_child(server)
    server.kill()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child), "the digest process outlived its server"
