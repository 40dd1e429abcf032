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
    """Child processes of every thread: the digest is restarted by the supervisor thread, not the main one."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return found


def _digest_child(server: ServerProcess, timeout: float = 20.0) -> int:
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _children(server.process.pid):
            # The digest child, not multiprocessing's resource tracker (also a child, started first).
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
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


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19, counted after the command name


def test_the_digest_process_yields_the_cpu_to_ingest(server: ServerProcess) -> None:
    assert server.process is not None
    child = _digest_child(server)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _niceness(child) <= _niceness(server.process.pid):
        time.sleep(0.1)
    assert _niceness(child) > _niceness(server.process.pid)
