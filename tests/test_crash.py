"""A ``200`` survives ``kill -9``: events acknowledged before the server is killed mid-stream are all digested
after the restart, each exactly once, without any client resending anything.
"""

from __future__ import annotations

import json
import os
import queue
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select

from stackwatch.server.services import Services
from stackwatch.server.storage.schema import events
from tests.conftest import PYTHON_KEY, ServerFactory, ServerProcess

pytestmark = pytest.mark.slow

EVENTS = 300
SENDERS = 6
STREAM_TIMEOUT = 60.0  # seconds for the whole stream, kill included
AUTH = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={PYTHON_KEY}, sentry_client=stackwatch-tests/1.0"}


def envelope(number: int, event_id: str) -> bytes:
    kind = ("ValueError", "KeyError", "TimeoutError", "RuntimeError", "OSError")[number % 5]
    event = {
        "event_id": event_id,
        "timestamp": time.time(),
        "level": "error",
        "platform": "python",
        "tags": {"component": "orchestrator", "run_id": f"run_{number}", "workflow_id": f"wf_{number % 3}"},
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": f"step {number} failed",
                    "stacktrace": {
                        "frames": [
                            {
                                "module": "meshhook.worker",
                                "function": "run_step",
                                "context_line": f"raise {kind}()",
                                "lineno": 10 + number,
                                "in_app": True,
                            },
                        ]
                    },
                }
            ]
        },
    }
    payload = json.dumps(event).encode()
    header = json.dumps({"event_id": event_id}).encode()
    item = json.dumps({"type": "event", "length": len(payload)}).encode()
    return b"\n".join([header, item, payload]) + b"\n"


@dataclass
class Stream:
    """What the senders saw: every event id sent, and those answered ``200``."""

    sent: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.progress = threading.Condition(self.lock)


def sender(server: ServerProcess, work: queue.Queue[tuple[int, str]], stream: Stream, deadline: float) -> None:
    url = f"{server.base_url}/api/1/envelope/"
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                number, event_id = work.get_nowait()
            except queue.Empty:
                return
            with stream.lock:
                stream.sent.add(event_id)
            try:
                response = client.post(url, content=envelope(number, event_id), headers=AUTH)
                status = str(response.status_code)
                ok = response.status_code == 200 and response.json().get("id") == event_id
            except httpx.HTTPError as exc:  # the server is gone: this one was never acknowledged
                status, ok = type(exc).__name__, False
            with stream.progress:
                stream.answered += 1
                if ok:
                    stream.acked.add(event_id)
                else:
                    stream.failed.append(status)
                stream.progress.notify_all()


def stored_event_ids(services: Services) -> list[str]:
    with services.engine.connect() as connection:
        return list(connection.execute(select(events.c.event_id)).scalars())


def test_acknowledged_events_survive_kill_9(server: ServerProcess, services: Services) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    kill_after = rng.randint(20, EVENTS - 40)  # answers seen before the kill
    context = f"(seed {seed}, killed after {kill_after} answers)"

    work: queue.Queue[tuple[int, str]] = queue.Queue()
    for number in range(EVENTS):
        work.put((number, uuid.uuid4().hex))
    stream = Stream()
    deadline = time.monotonic() + STREAM_TIMEOUT
    threads = [
        threading.Thread(target=sender, args=(server, work, stream, deadline), daemon=True) for _ in range(SENDERS)
    ]
    for thread in threads:
        thread.start()
    with stream.progress:
        reached = stream.progress.wait_for(lambda: stream.answered >= kill_after, timeout=STREAM_TIMEOUT)
    server.kill()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
    assert reached, f"only {stream.answered} of {EVENTS} events were answered in time {context}"
    assert not any(thread.is_alive() for thread in threads), f"senders still running at the deadline {context}"
    assert stream.acked, f"no event was acknowledged before the kill {context}"
    assert len(stream.acked) < EVENTS, f"the kill came after the stream ended {context}"

    # Restart and, while the backlog is being digested, kill once more: a crash mid-batch must not lose or double.
    server.start()
    server.kill()
    server.start()
    server.wait_digested(timeout=60)

    token = server.token
    with httpx.Client(base_url=f"{server.base_url}/api/v1", headers={"Authorization": f"Bearer {token}"}) as api:
        lost = [event_id for event_id in sorted(stream.acked) if api.get(f"/events/{event_id}").status_code != 200]
    assert not lost, f"{len(lost)} of {len(stream.acked)} acknowledged events were lost {context}: {lost[:5]}"

    stored = stored_event_ids(services)
    doubled = {event_id for event_id, times in Counter(stored).items() if times > 1}
    assert not doubled, f"events stored more than once {context}: {sorted(doubled)[:5]}"
    unknown = set(stored) - stream.sent
    assert not unknown, f"events stored that were never sent {context}: {sorted(unknown)[:5]}"
    # Unacknowledged events (in flight at the kill) may or may not have been committed; acknowledged ones must be.
    assert stream.acked <= set(stored), context
    # Each sender had at most one request in flight when the server died.
    assert len(stream.acked) <= len(stored) <= len(stream.acked) + SENDERS, context
    with services.engine.connect() as connection:
        distinct = connection.execute(select(func.count(func.distinct(events.c.event_id)))).scalar_one()
        total = connection.execute(select(func.count()).select_from(events)).scalar_one()
    assert total == distinct == len(stored), f"{total} events stored, {distinct} distinct {context}"


def backlog(server: ServerProcess) -> int:
    return int(httpx.get(f"{server.base_url}/readyz", timeout=5).json()["inbox_backlog"])


def test_digest_killed_mid_backlog_neither_loses_nor_doubles(start_server: ServerFactory, services: Services) -> None:
    """Envelopes piled up in the inbox (an ingest-only process), then a digest killed partway through them."""
    seed = int.from_bytes(os.urandom(4), "big")
    kill_below = random.Random(seed).randint(EVENTS // 4, EVENTS - 20)  # kill when the backlog falls below this
    server = start_server(STACKWATCH_ROLE="ingest")
    acked = set()
    with httpx.Client(timeout=10) as client:
        for number in range(EVENTS):
            event_id = uuid.uuid4().hex
            response = client.post(
                f"{server.base_url}/api/1/envelope/", content=envelope(number, event_id), headers=AUTH
            )
            assert response.status_code == 200, response.text
            acked.add(event_id)
    assert backlog(server) == EVENTS
    server.kill()

    # The digest as a thread of the server, so that the kill -9 lands in the middle of its batches (a digest
    # child process would be stopped by SIGTERM and finish its batch first); many small transactions.
    server.env.update(STACKWATCH_ROLE="all", STACKWATCH_DIGEST_PROCESS="false", STACKWATCH_DIGEST_BATCH_SIZE="7")
    server.start()
    deadline = time.monotonic() + 30
    left = backlog(server)
    while left >= kill_below and time.monotonic() < deadline:
        time.sleep(0.005)
        left = backlog(server)
    server.kill()
    context = f"(seed {seed}, killed with {left} of {EVENTS} envelopes left to digest)"
    server.start()
    server.wait_digested(timeout=60)

    stored = stored_event_ids(services)
    doubled = {event_id for event_id, times in Counter(stored).items() if times > 1}
    assert not doubled, f"events stored more than once {context}: {sorted(doubled)[:5]}"
    missing = acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost {context}: {sorted(missing)[:5]}"
    assert len(stored) == len(acked), context
