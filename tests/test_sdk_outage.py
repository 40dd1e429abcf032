"""The spool transport's promise, end to end against a real Stackwatch server: nothing captured while the server
is away, or right before the process is killed, is lost or delivered twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackwatch.sdk.spool import ENVELOPE_SUFFIX, folder_for
from tests.conftest import PYTHON_KEY, ROOT, ServerFactory, ServerProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

# A component using sentry-sdk with the spool transport. argv: DSN, spool dir, run id, count.
# Captures `count` errors with distinct messages, prints their ids, then on each line of stdin: flushes for up to
# 60 s and prints how many envelopes are still spooled; exits when stdin closes.
COMPONENT = r"""
import json, os, sys
import sentry_sdk
from stackwatch.sdk.transport import SpoolTransport

dsn, spool, run_id, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
transport = SpoolTransport({"dsn": dsn}, spool_dir=spool, retry_max_seconds=1)
sentry_sdk.init(dsn=dsn, transport=transport, shutdown_timeout=0)
sentry_sdk.set_tag("run_id", run_id)
sentry_sdk.set_tag("component", "orchestrator")


def deliver_webhook(number, attempt):
    payload = {"order": number, "attempt": attempt}
    raise ConnectionError(f"webhook {number} refused the connection")


ids = []
for number in range(count):
    try:
        deliver_webhook(number, attempt=1)
    except ConnectionError:
        ids.append(sentry_sdk.capture_exception())
print(json.dumps(ids), flush=True)
for _ in sys.stdin:
    transport.flush(60)
    left = [n for n in os.listdir(transport.folder) if n.endswith(".envelope")]
    print(json.dumps({"spooled": len(left)}), flush=True)
"""

# Captures one exception and says so the moment capture_exception has returned; then waits to be killed.
CRASHER = r"""
import sys, time
import sentry_sdk
from stackwatch.sdk.transport import SpoolTransport

dsn, spool = sys.argv[1], sys.argv[2]
sentry_sdk.init(dsn=dsn, transport=SpoolTransport({"dsn": dsn}, spool_dir=spool))
try:
    {}["missing step output"]
except KeyError:
    event_id = sentry_sdk.capture_exception()
print("captured", event_id, flush=True)
time.sleep(60)
"""

# A later process on the same spool: its sender replays what is left, flush waits for it.
RESTARTED = r"""
import os, sys
import sentry_sdk
from stackwatch.sdk.transport import SpoolTransport

dsn, spool = sys.argv[1], sys.argv[2]
transport = SpoolTransport({"dsn": dsn}, spool_dir=spool)
sentry_sdk.init(dsn=dsn, transport=transport)
transport.flush(30)
print(len([n for n in os.listdir(transport.folder) if n.endswith(".envelope")]), flush=True)
"""


def _python(script: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT, **popen)


def _server_on(start_server: ServerFactory, port: int) -> ServerProcess:
    """A server on a port chosen before it runs (the DSN the component already uses)."""
    settings = start_server.settings
    server = ServerProcess(settings.data_dir, settings.database_url, port, start_server.token)
    start_server.started.append(server)
    server.start()
    return server


def _api(server: ServerProcess, path: str, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    return httpx.get(f"{server.base_url}/api/v1{path}", params=params, headers=headers, timeout=10)


def _run_events(server: ServerProcess, run_id: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(100):  # pages of 100: far more than enough
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = _api(server, f"/runs/{run_id}/events", **params).json()
        ids += [event["event_id"] for event in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("too many pages")


def _metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    values = [float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)]
    return sum(values)


def _spooled(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(ENVELOPE_SUFFIX)] if folder.exists() else []


def test_every_error_captured_during_an_outage_arrives_once(start_server: ServerFactory, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet: the server is "down"
    dsn = f"http://{PYTHON_KEY}@127.0.0.1:{port}/1"
    spool = tmp_path / "spool"
    run_id = f"run_outage_{uuid.uuid4().hex[:8]}"
    component = _python(COMPONENT, dsn, str(spool), run_id, "500", stdin=subprocess.PIPE)
    assert component.stdout is not None and component.stdin is not None
    try:
        ids = json.loads(component.stdout.readline())
        assert len(ids) == 500 and len(set(ids)) == 500 and all(ids)
        assert len(_spooled(folder_for(spool, dsn))) == 500, "every error waits in the spool"

        server = _server_on(start_server, port)
        component.stdin.write("flush\n")
        component.stdin.flush()
        assert json.loads(component.stdout.readline()) == {"spooled": 0}
        server.wait_digested(timeout=60)

        stored = _run_events(server, run_id)
        assert len(stored) == 500, f"{len(stored)} of 500 errors stored"
        assert sorted(stored) == sorted(ids)
        assert _metric(server, "stackwatch_digest_duplicates_total") == 0, "an envelope was delivered twice"
        assert _metric(server, "stackwatch_digest_events_total") == 500
    finally:
        component.stdin.close()
        assert component.wait(30) == 0


def test_an_error_captured_right_before_kill_9_is_delivered_by_the_next_process(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    port = free_port()
    dsn = f"http://{PYTHON_KEY}@127.0.0.1:{port}/1"
    spool = tmp_path / "spool"
    crasher = _python(CRASHER, dsn, str(spool))
    assert crasher.stdout is not None
    try:
        line = crasher.stdout.readline()
        crasher.send_signal(signal.SIGKILL)
        crasher.wait(10)
    finally:
        crasher.kill()
    assert line.startswith("captured "), line
    event_id = line.split()[1]
    assert len(_spooled(folder_for(spool, dsn))) == 1

    server = _server_on(start_server, port)
    restarted = _python(RESTARTED, dsn, str(spool))
    out, _ = restarted.communicate(timeout=60)
    assert restarted.returncode == 0 and out.strip() == "0", out
    server.wait_digested(timeout=30)
    response = _api(server, f"/events/{event_id}")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["exception"]["values"][0]["type"] == "KeyError"
