"""Helpers for the ``stackwatch.sdk`` tests: a recording HTTP server on 127.0.0.1 and a component child process.

The recorder plays the part of the network: the component's DSN points at it, it keeps every request exactly as
it arrived (and decoded), and it can forward each one to a real Stackwatch server so that the same bytes are
also ingested, digested and served by the REST API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

from stackwatch.server.ingest.decode import decode_body
from stackwatch.server.ingest.envelope import parse_envelope
from tests.conftest import PYTHON_KEY, ROOT

COMPONENT_SCRIPT = ROOT / "tests" / "sdk_component.py"
_FORWARDED_HEADERS = ("content-type", "content-encoding", "x-sentry-auth", "user-agent")
_ANSWER_HEADERS = ("retry-after", "x-sentry-rate-limits", "content-type")


@dataclass(frozen=True)
class Recorded:
    """One request as it reached the recorder: the raw body and the body after content decoding."""

    path: str
    headers: dict[str, str]
    body: bytes
    decoded: bytes


class Recorder:
    """A threaded HTTP server that records every request; answers 200 itself or with the upstream's answer."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream
        self.refusing = False  # while set: answer 503 to everything, record nothing (the server is "down")
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def dsn(self, project_id: int = 1, key: str = PYTHON_KEY) -> str:
        return f"http://{key}@127.0.0.1:{self.port}/{project_id}"

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def snapshot(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)

    def items(self) -> list[tuple[dict[str, Any], bytes]]:
        """Every envelope item received so far, as ``(item headers, payload)``."""
        out = []
        for request in self.snapshot():
            for item in parse_envelope(request.decoded).items:
                out.append((item.headers, item.payload))
        return out

    def events(self) -> list[dict[str, Any]]:
        """Every error/message event received so far, parsed."""
        return [orjson.loads(payload) for headers, payload in self.items() if headers.get("type") == "event"]

    def wait_events(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """At least ``count`` events, waiting up to ``timeout`` seconds for them."""
        try:
            return wait_for(lambda: (lambda found: found if len(found) >= count else None)(self.events()), timeout)
        except AssertionError:
            raise AssertionError(f"expected {count} events, got {[event_text(e) for e in self.events()]}") from None

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the http.server naming convention
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if recorder.refusing:
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                encoding = self.headers.get("content-encoding") or ""
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder._record(Recorded(self.path, headers, body, decode_body(body, encoding, 1 << 30)))
                status, answer, answer_headers = recorder._answer(self.path, headers, body)
                self.send_response(status)
                for name, value in answer_headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
        if self.upstream is None:
            return 200, b'{"id": "' + uuid.uuid4().hex.encode() + b'"}', {"content-type": "application/json"}
        forwarded = {name: headers[name] for name in _FORWARDED_HEADERS if name in headers}
        response = httpx.post(f"{self.upstream}{path}", content=body, headers=forwarded, timeout=10)
        kept = {name: response.headers[name] for name in _ANSWER_HEADERS if name in response.headers}
        return response.status_code, response.content, kept


@contextmanager
def recording(upstream: str | None = None) -> Iterator[Recorder]:
    recorder = Recorder(upstream).start()
    try:
        yield recorder
    finally:
        recorder.stop()


def wait_for(probe: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """The first truthy result of ``probe()``, polling for at most ``timeout`` seconds (and a bounded count)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last result: {result!r}")


@dataclass
class ChildResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        """The JSON line the scenario printed last."""
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        assert lines, f"the component printed no result\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        value: dict[str, Any] = json.loads(lines[-1])
        return value


def run_component(
    scenario: str,
    spool_dir: Path,
    *,
    dsn: str | None = None,
    data: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    returncode: int = 0,
    timeout: float = 60.0,
) -> ChildResult:
    """Run ``tests/sdk_component.py SCENARIO`` with the venv's Python; fail unless it exits with ``returncode``.

    The DSN goes in ``STACKWATCH_DSN`` (unless ``env`` says otherwise), the spool in ``STACKWATCH_SPOOL_DIR``, and
    ``data`` in a JSON file named by ``SDK_TEST_INPUT`` (never on the command line: sentry-sdk reports ``sys.argv``).
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    input_path = spool_dir.parent / f"input-{uuid.uuid4().hex[:8]}.json"
    input_path.write_text(json.dumps(data or {}))
    child_env = {k: v for k, v in os.environ.items() if k not in ("STACKWATCH_DSN", "SENTRY_DSN")}
    child_env.update({"STACKWATCH_SPOOL_DIR": str(spool_dir), "SDK_TEST_INPUT": str(input_path)})
    if dsn is not None:
        child_env["STACKWATCH_DSN"] = dsn
    child_env.update(env or {})
    completed = subprocess.run(
        [sys.executable, str(COMPONENT_SCRIPT), scenario],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        check=False,
        cwd=ROOT,
    )
    child = ChildResult(completed.returncode, completed.stdout, completed.stderr)
    assert child.returncode == returncode, (
        f"{scenario}: exit {child.returncode}, expected {returncode}\nstdout:\n{child.stdout}\nstderr:\n{child.stderr}"
    )
    return child


def by_message(events: list[dict[str, Any]], needle: str) -> dict[str, Any]:
    """The one event whose message, log message or exception value contains ``needle``."""
    found = [event for event in events if needle in event_text(event)]
    assert len(found) == 1, f"{len(found)} events mention {needle!r}: {[event_text(e) for e in events]}"
    return found[0]


def event_text(event: dict[str, Any]) -> str:
    parts = [str(event.get("message") or "")]
    logentry = event.get("logentry") or {}
    parts += [str(logentry.get("formatted") or ""), str(logentry.get("message") or "")]
    parts += [f"{v.get('type')}: {v.get('value')}" for v in (event.get("exception") or {}).get("values") or []]
    return "\n".join(parts)


def mechanism(event: dict[str, Any]) -> dict[str, Any]:
    values = (event.get("exception") or {}).get("values") or [{}]
    found: dict[str, Any] = values[-1].get("mechanism") or {}
    return found
