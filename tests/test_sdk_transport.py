"""``stackwatch.sdk.transport.SpoolTransport`` against a local HTTP server that answers as told and records every
request: what reaches the server, what stays in the spool, what is reported lost.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef

from stackwatch.sdk.spool import ENVELOPE_SUFFIX, decode_categories, folder_for
from stackwatch.sdk.transport import (
    DEFAULT_MAX_BYTES,
    SpoolTransport,
    resolve_max_bytes,
    resolve_retry_max_seconds,
    resolve_spool_dir,
)
from stackwatch.server.ingest.limits import NEVER_KEPT_HEADER
from tests.conftest import ROOT, free_port

# Fast timings for tests: the sender notices new files within 50 ms and never backs off for long.
FAST: dict[str, Any] = {"poll_interval": 0.05, "lock_retry_seconds": 0.1, "retry_max_seconds": 0.4}


# --- a recording HTTP server ---------------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes  # as sent, decompressed
    at: float  # time.monotonic() when it arrived

    @property
    def envelope(self) -> Envelope:
        return Envelope.deserialize(self.body)

    @property
    def event_ids(self) -> list[str]:
        return [item.headers.get("event_id") or item.get_event()["event_id"] for item in self._items("event")]  # type: ignore[index]

    @property
    def client_reports(self) -> list[dict[str, Any]]:
        return [json.loads(item.get_bytes()) for item in self._items("client_report")]

    def _items(self, kind: str) -> list[Item]:
        return [item for item in self.envelope.items if item.type == kind]


@dataclass
class Recorder:
    """``POST`` answers from a queue (``answer``), then ``default``; every request recorded in ``requests``."""

    port: int = 0
    default: tuple[int, dict[str, str]] = (200, {})
    requests: list[Request] = field(default_factory=list)
    _answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = -1  # one write per answer

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                status, headers = recorder._record(Request(self.path, dict(self.headers), body, time.monotonic()))
                payload = b'{"id":null}' if status == 200 else b'{"detail":"no"}'
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/42"

    def answer(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        with self._cond:
            self._answers.extend([(status, headers or {})] * times)

    def _record(self, request: Request) -> tuple[int, dict[str, str]]:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
            return self._answers.pop(0) if self._answers else self.default

    def wait(self, predicate: Callable[[list[Request]], bool], timeout: float = 10.0) -> list[Request]:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.requests), timeout), (
                f"timed out; got {len(self.requests)} requests: {[r.body[:120] for r in self.requests]}"
            )
            return list(self.requests)

    def event_ids(self) -> list[str]:
        with self._cond:
            return [event_id for request in self.requests for event_id in request.event_ids]

    def discarded(self) -> dict[tuple[str, str], int]:
        """``(reason, category) → quantity`` summed over every client report received."""
        totals: dict[tuple[str, str], int] = {}
        with self._cond:
            for request in self.requests:
                for report in request.client_reports:
                    for entry in report["discarded_events"]:
                        key = (entry["reason"], entry["category"])
                        totals[key] = totals.get(key, 0) + entry["quantity"]
        return totals


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def transports() -> Iterator[list[SpoolTransport]]:
    made: list[SpoolTransport] = []
    yield made
    for transport in made:
        transport.kill()


@pytest.fixture
def make(tmp_path: Path, transports: list[SpoolTransport]) -> Callable[..., SpoolTransport]:
    def build(dsn: str, **options: Any) -> SpoolTransport:
        settings = {**FAST, "spool_dir": tmp_path / "spool", **options}
        transport = SpoolTransport({"dsn": dsn}, **settings)
        transports.append(transport)
        return transport

    return build


def event_envelope(message: str = "boom", **headers: Any) -> tuple[Envelope, str]:
    event_id = uuid.uuid4().hex
    event: Any = {"event_id": event_id, "level": "error", "message": message, "platform": "python"}
    envelope = Envelope(headers={"event_id": event_id, **headers})
    envelope.add_event(event)
    return envelope, event_id


def transaction_envelope() -> Envelope:
    envelope = Envelope(headers={"event_id": uuid.uuid4().hex})
    envelope.add_transaction({"type": "transaction", "transaction": "GET /", "spans": [{"op": "db"}, {"op": "http"}]})
    return envelope


def spooled(transport: SpoolTransport) -> list[str]:
    return sorted(name for name in os.listdir(transport.folder) if name.endswith(ENVELOPE_SUFFIX))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def dead_dsn() -> str:
    """A DSN whose port has no listener: every connection is refused."""
    return f"http://publickey@127.0.0.1:{free_port()}/42"


# --- capture: on disk before it returns -----------------------------------------------------------------------


def test_capture_writes_the_serialized_envelope_to_the_spool_before_returning(
    make: Callable[..., SpoolTransport],
) -> None:
    transport = make(dead_dsn())
    envelope, _ = event_envelope()
    transport.capture_envelope(envelope)
    files = spooled(transport)
    assert len(files) == 1
    assert (transport.folder / files[0]).read_bytes() == envelope.serialize()
    assert decode_categories(files[0]) == [("error", 1)]
    assert not [name for name in os.listdir(transport.folder) if name.startswith(".tmp-")]
    # Arrival order is lexical order.
    for number in range(5):
        transport.capture_envelope(event_envelope(f"m{number}")[0])
    names = spooled(transport)
    messages = [Envelope.deserialize((transport.folder / n).read_bytes()).get_event()["message"] for n in names]  # type: ignore[index]
    assert messages == ["boom", "m0", "m1", "m2", "m3", "m4"]


def test_one_folder_per_dsn(tmp_path: Path, make: Callable[..., SpoolTransport]) -> None:
    first, second = make(dead_dsn()), make(dead_dsn())
    first.capture_envelope(event_envelope()[0])
    assert first.folder != second.folder
    assert first.folder == folder_for(tmp_path / "spool", first.options["dsn"])  # type: ignore[index]
    assert len(spooled(first)) == 1 and spooled(second) == []


# --- sending ---------------------------------------------------------------------------------------------------


def test_sends_to_the_envelope_endpoint_and_deletes_on_200(
    recorder: Recorder, make: Callable[..., SpoolTransport]
) -> None:
    transport = make(recorder.dsn)
    envelope, event_id = event_envelope(sent_at="2020-01-01T00:00:00.000000Z")
    transport.capture_envelope(envelope)
    (request,) = recorder.wait(lambda requests: len(requests) == 1)
    assert request.path == "/api/42/envelope/"
    assert request.headers["X-Sentry-Auth"].startswith("Sentry sentry_key=publickey, sentry_version=7")
    assert request.headers["Content-Type"] == "application/x-sentry-envelope"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.event_ids == [event_id]
    assert request.envelope.headers["sent_at"] > "2020"  # refreshed at send time: servers correct clock drift by it
    assert not request.envelope.headers["sent_at"].startswith("2020")
    wait_until(lambda: spooled(transport) == [])


def test_429_with_retry_after_keeps_the_file_pauses_then_sends(
    recorder: Recorder, make: Callable[..., SpoolTransport]
) -> None:
    recorder.answer(429, {"Retry-After": "1"})
    transport = make(recorder.dsn)
    envelope, event_id = event_envelope()
    transport.capture_envelope(envelope)
    recorder.wait(lambda requests: len(requests) == 1)
    time.sleep(0.3)
    assert len(spooled(transport)) == 1, "a rate-limited error stays in the spool"
    assert len(recorder.requests) == 1, "nothing is sent while the limit lasts"
    second, second_id = event_envelope("while limited")
    transport.capture_envelope(second)
    requests = recorder.wait(lambda requests: len(requests) == 3, timeout=5)
    assert requests[1].at - requests[0].at >= 0.95
    assert [r.event_ids for r in requests] == [[event_id], [event_id], [second_id]]
    wait_until(lambda: spooled(transport) == [])
    assert recorder.discarded() == {}


def test_rate_limit_header_limits_only_its_categories(recorder: Recorder, make: Callable[..., SpoolTransport]) -> None:
    # Like Stackwatch's own answer: 200, and categories it never keeps held back for an hour.
    recorder.default = (200, {"X-Sentry-Rate-Limits": NEVER_KEPT_HEADER})
    transport = make(recorder.dsn)
    first, _ = event_envelope()
    transport.capture_envelope(first)
    recorder.wait(lambda requests: len(requests) == 1)
    wait_until(lambda: spooled(transport) == [])
    transport.capture_envelope(transaction_envelope())
    assert spooled(transport) == [], "a transaction the server never keeps is dropped before the spool"
    mixed, mixed_id = event_envelope("with a profile")
    mixed.add_item(Item(PayloadRef(json={"profile": True}), type="profile"))
    transport.capture_envelope(mixed)
    transport.flush(5)
    requests = recorder.wait(lambda requests: recorder.discarded() != {})
    assert [item.type for item in requests[1].envelope.items] == ["event"]
    assert requests[1].event_ids == [mixed_id]
    assert recorder.discarded() == {
        ("ratelimit_backoff", "transaction"): 1,
        ("ratelimit_backoff", "span"): 3,
        ("ratelimit_backoff", "profile"): 1,
    }


def test_429_for_errors_holds_errors_and_lets_client_reports_through(
    recorder: Recorder, make: Callable[..., SpoolTransport]
) -> None:
    recorder.answer(429, {"Retry-After": "2", "X-Sentry-Rate-Limits": "2:error;default;security:key"})
    transport = make(recorder.dsn)
    envelope, event_id = event_envelope()
    transport.capture_envelope(envelope)
    recorder.wait(lambda requests: len(requests) == 1)
    transport.record_lost_event("sample_rate", "error")
    transport.flush(0.5)  # writes the client report; the error stays held back
    requests = recorder.wait(lambda requests: len(requests) == 2)
    assert requests[1].client_reports and requests[1].event_ids == []
    wait_until(lambda: len(spooled(transport)) == 1)  # the report is deleted once answered; the error stays
    requests = recorder.wait(lambda requests: len(requests) == 3, timeout=5)
    assert requests[2].event_ids == [event_id]
    assert requests[2].at - requests[0].at >= 1.9


def test_400_deletes_the_envelope_and_reports_a_send_error(
    recorder: Recorder, make: Callable[..., SpoolTransport]
) -> None:
    recorder.answer(400, {"X-Sentry-Error": "malformed"})
    transport = make(recorder.dsn)
    envelope, event_id = event_envelope()
    envelope.add_item(Item(PayloadRef(bytes=b"x" * 100), type="attachment", filename="a.txt"))
    transport.capture_envelope(envelope)
    recorder.wait(lambda requests: len(requests) == 1)
    wait_until(lambda: spooled(transport) == [])
    transport.flush(5)
    recorder.wait(lambda requests: len(requests) == 2)
    assert recorder.discarded() == {("send_error", "error"): 1, ("send_error", "attachment"): 100}
    assert recorder.event_ids() == [event_id], "a refused envelope is never sent again"


def test_a_refused_envelope_is_counted_before_its_file_goes(
    recorder: Recorder, make: Callable[..., SpoolTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush that finds the spool empty writes the pending losses as a client report: the loss must already be
    counted when the file disappears, or that flush reports nothing."""
    recorder.answer(400, {"X-Sentry-Error": "malformed"})
    transport = make(recorder.dsn)
    store = transport._store
    counted_at_removal: list[bool] = []
    remove = store.remove

    def watched_remove(name: str) -> None:
        counted_at_removal.append(transport._lost.pending())
        remove(name)

    monkeypatch.setattr(store, "remove", watched_remove)
    envelope, _ = event_envelope()
    transport.capture_envelope(envelope)
    recorder.wait(lambda requests: len(requests) == 1)
    wait_until(lambda: bool(counted_at_removal))
    assert counted_at_removal[0] is True


def test_503_is_retried_with_growing_delays_and_the_file_kept(
    recorder: Recorder, make: Callable[..., SpoolTransport]
) -> None:
    recorder.answer(503, times=4)
    transport = make(recorder.dsn, retry_max_seconds=1.0)
    envelope, event_id = event_envelope()
    transport.capture_envelope(envelope)
    requests = recorder.wait(lambda requests: len(requests) == 3)
    assert len(spooled(transport)) == 1
    requests = recorder.wait(lambda requests: len(requests) == 5, timeout=10)
    assert [r.event_ids for r in requests] == [[event_id]] * 5
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    # 0.5 s base doubling up to the 1 s cap, each delay 50-100 % of that (jitter).
    # Upper bounds with slack for a busy machine.
    assert 0.2 <= gaps[0] <= 0.9, gaps
    assert all(0.45 <= gap <= 1.6 for gap in gaps[1:]), gaps
    assert max(gaps[1:]) > gaps[0], gaps
    wait_until(lambda: spooled(transport) == [])
    assert recorder.discarded() == {}


def test_503_retry_after_is_honoured(recorder: Recorder, make: Callable[..., SpoolTransport]) -> None:
    recorder.answer(503, {"Retry-After": "2"})
    transport = make(recorder.dsn)
    transport.capture_envelope(event_envelope()[0])
    requests = recorder.wait(lambda requests: len(requests) == 2, timeout=5)
    assert requests[1].at - requests[0].at >= 1.9


def test_connection_refused_keeps_everything_until_the_server_listens(make: Callable[..., SpoolTransport]) -> None:
    port = free_port()
    transport = make(f"http://publickey@127.0.0.1:{port}/42")
    ids = []
    for number in range(20):
        envelope, event_id = event_envelope(f"outage {number}")
        transport.capture_envelope(envelope)
        ids.append(event_id)
    time.sleep(0.5)
    assert len(spooled(transport)) == 20
    recorder = Recorder(port=port).start()
    try:
        recorder.wait(lambda requests: len(requests) >= 20)
        transport.flush(5)
        assert recorder.event_ids() == ids, "all of them, once each, oldest first"
    finally:
        recorder.close()


# --- the size bound ---------------------------------------------------------------------------------------------


def test_size_bound_evicts_the_oldest_and_reports_them(make: Callable[..., SpoolTransport]) -> None:
    port = free_port()
    dsn = f"http://publickey@127.0.0.1:{port}/42"
    padding = "x" * 400  # so that a client report fits in the half envelope of room left
    one = len(event_envelope(f"message 00 {padding}")[0].serialize())
    writer = make(dsn, max_bytes=one * 5 + one // 2)
    writer.kill()  # this process only writes; the sender below starts when the server is up
    ids = []
    for number in range(12):
        envelope, event_id = event_envelope(f"message {number:02d} {padding}")
        writer.capture_envelope(envelope)
        ids.append(event_id)
    files = spooled(writer)
    assert [Envelope.deserialize((writer.folder / n).read_bytes()).headers["event_id"] for n in files] == ids[7:]
    assert sum((writer.folder / name).stat().st_size for name in files) <= writer.max_bytes
    assert not writer.is_healthy()
    writer.flush(0)  # writes the client report
    recorder = Recorder(port=port).start()
    try:
        sender = make(dsn, max_bytes=one * 5 + one // 2)
        sender.flush(5)
        assert recorder.event_ids() == ids[7:], "the newest survive, in order"
        assert recorder.discarded() == {("queue_overflow", "error"): 7}
        assert sender.is_healthy()
    finally:
        recorder.close()


def test_an_envelope_bigger_than_the_bound_is_counted_lost(
    recorder: Recorder, make: Callable[..., SpoolTransport]
) -> None:
    transport = make(recorder.dsn, max_bytes=1000)
    envelope, _ = event_envelope("x" * 2000)
    transport.capture_envelope(envelope)
    assert spooled(transport) == []
    transport.flush(5)
    recorder.wait(lambda requests: recorder.discarded() == {("queue_overflow", "error"): 1})


# --- flush and kill ---------------------------------------------------------------------------------------------


def test_flush_returns_as_soon_as_the_spool_is_drained(recorder: Recorder, make: Callable[..., SpoolTransport]) -> None:
    transport = make(recorder.dsn, poll_interval=5.0)
    for number in range(10):
        transport.capture_envelope(event_envelope(f"m{number}")[0])
    started = time.monotonic()
    transport.flush(10)
    assert time.monotonic() - started < 3
    assert len(recorder.event_ids()) == 10
    assert spooled(transport) == []
    started = time.monotonic()
    transport.flush(10)  # nothing pending: at once
    assert time.monotonic() - started < 0.1


def test_flush_with_the_server_down_returns_after_the_timeout_and_keeps_the_files(
    make: Callable[..., SpoolTransport],
) -> None:
    transport = make(dead_dsn())
    transport.capture_envelope(event_envelope()[0])
    calls: list[tuple[int, float]] = []
    started = time.monotonic()
    transport.flush(0.6, lambda pending, timeout: calls.append((pending, timeout)))
    assert 0.55 <= time.monotonic() - started < 2
    assert calls == [(1, 0.6)]
    assert len(spooled(transport)) == 1


def test_kill_stops_the_sender_and_deletes_nothing(recorder: Recorder, make: Callable[..., SpoolTransport]) -> None:
    transport = make(recorder.dsn)
    transport.capture_envelope(event_envelope()[0])
    recorder.wait(lambda requests: len(requests) == 1)
    started = time.monotonic()
    transport.kill()
    assert time.monotonic() - started < 1
    transport.capture_envelope(event_envelope()[0])  # still spooled, for the next process to send
    time.sleep(0.3)
    assert len(recorder.requests) == 1
    assert len(spooled(transport)) == 1


# --- losses counted by sentry-sdk itself ------------------------------------------------------------------------


def test_sentry_sdk_losses_reach_the_server_as_client_reports(recorder: Recorder, tmp_path: Path) -> None:
    transport = SpoolTransport({"dsn": recorder.dsn}, spool_dir=tmp_path, **{**FAST, "retry_max_seconds": None})
    client = sentry_sdk.Client(recorder.dsn, transport=transport, sample_rate=0.0)
    try:
        with sentry_sdk.new_scope() as scope:
            scope.set_client(client)
            sentry_sdk.capture_message("sampled out")
        client.flush(timeout=5)
        recorder.wait(lambda requests: recorder.discarded() == {("sample_rate", "error"): 1})
        report = recorder.requests[-1].client_reports[0]
        assert isinstance(report["timestamp"], float) and abs(report["timestamp"] - time.time()) < 60
        assert recorder.event_ids() == []
    finally:
        client.close(timeout=1)


# --- a spool that cannot be written ---------------------------------------------------------------------------


def test_unusable_spool_dir_falls_back_to_memory_without_raising(
    recorder: Recorder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be")
    with caplog.at_level(logging.WARNING, logger="stackwatch.sdk"):
        transport = SpoolTransport({"dsn": recorder.dsn}, spool_dir=blocker / "spool", **FAST)
        try:
            assert not transport.durable
            ids = []
            for number in range(3):
                envelope, event_id = event_envelope(f"m{number}")
                transport.capture_envelope(envelope)
                ids.append(event_id)
            transport.flush(5)
            assert recorder.event_ids() == ids
        finally:
            transport.kill()
    warnings = [r for r in caplog.records if r.name == "stackwatch.sdk" and "in-memory" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]


def test_spool_broken_while_running_falls_back_once(
    recorder: Recorder, make: Callable[..., SpoolTransport], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    transport = make(f"http://publickey@127.0.0.1:{port}/42")
    assert transport.durable
    # The folder disappears and a file takes its place: every write now fails (as on a full or read-only disk).
    # The sender thread may be creating its lock file meanwhile: retry until the folder is gone.
    for _ in range(100):
        shutil.rmtree(transport.folder, ignore_errors=True)
        try:
            transport.folder.write_text("")
            break
        except IsADirectoryError:
            time.sleep(0.01)
    assert transport.folder.is_file()
    with caplog.at_level(logging.WARNING, logger="stackwatch.sdk"):
        ids = []
        for number in range(3):
            envelope, event_id = event_envelope(f"m{number}")
            transport.capture_envelope(envelope)  # must not raise
            ids.append(event_id)
    assert not transport.durable
    warnings = [r for r in caplog.records if "in-memory" in r.getMessage()]
    assert len(warnings) == 1
    server = Recorder(port=port).start()
    try:
        transport.flush(5)
        assert server.event_ids() == ids
    finally:
        server.close()


# --- settings -------------------------------------------------------------------------------------------------


def test_settings_defaults_environment_and_validation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STACKWATCH_SPOOL_DIR", raising=False)
    monkeypatch.delenv("STACKWATCH_SPOOL_MAX_BYTES", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert resolve_spool_dir(None) == tmp_path / "state" / "stackwatch" / "spool"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert resolve_spool_dir(None) == Path.home() / ".local" / "state" / "stackwatch" / "spool"
    monkeypatch.setenv("STACKWATCH_SPOOL_DIR", str(tmp_path / "env"))
    assert resolve_spool_dir(None) == tmp_path / "env"
    assert resolve_spool_dir(tmp_path / "arg") == tmp_path / "arg"

    assert resolve_max_bytes(None) == DEFAULT_MAX_BYTES == 100 * 1024 * 1024
    monkeypatch.setenv("STACKWATCH_SPOOL_MAX_BYTES", "20MB")
    assert resolve_max_bytes(None) == 20 * 1024 * 1024
    assert resolve_max_bytes(4096) == 4096
    monkeypatch.setenv("STACKWATCH_SPOOL_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="STACKWATCH_SPOOL_MAX_BYTES"):
        resolve_max_bytes(None)
    with pytest.raises(ValueError, match="max_bytes"):
        resolve_max_bytes(0)
    monkeypatch.delenv("STACKWATCH_SPOOL_MAX_BYTES")

    assert resolve_retry_max_seconds(None) == 60.0
    assert resolve_retry_max_seconds(2) == 2.0
    for nonsense in (0, -1, float("nan"), float("inf"), "60", True):
        with pytest.raises(ValueError, match="retry_max_seconds"):
            resolve_retry_max_seconds(nonsense)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_max_seconds"):
        SpoolTransport({"dsn": dead_dsn()}, spool_dir=tmp_path, retry_max_seconds=-5)


# --- several processes, one spool -------------------------------------------------------------------------------

# argv: DSN, spool dir, count, "hold" (stay alive until stdin closes) or "exit". Prints one JSON line:
# {"ids": [...], "sender": bool} after capturing and flushing.
WRITER = r"""
import json, sys, uuid
from sentry_sdk.envelope import Envelope
from stackwatch.sdk.transport import SpoolTransport

dsn, spool, count, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
transport = SpoolTransport({"dsn": dsn}, spool_dir=spool, poll_interval=0.05, lock_retry_seconds=0.1,
                           retry_max_seconds=0.3)
print(json.dumps({"ready": True}), flush=True)
sys.stdin.readline()  # go
ids = []
for number in range(count):
    event_id = uuid.uuid4().hex
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_event({"event_id": event_id, "message": f"writer {number}", "level": "error"})
    transport.capture_envelope(envelope)
    ids.append(event_id)
print(json.dumps({"ids": ids}), flush=True)
sys.stdin.readline()  # flush
transport.flush(15)
print(json.dumps({"sender": transport.is_sender}), flush=True)
if mode == "hold":
    sys.stdin.read()
"""


def _spawn(dsn: str, spool: Path, count: int, mode: str = "hold") -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, dsn, str(spool), str(count), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None
    assert json.loads(child.stdout.readline()) == {"ready": True}
    return child


def _say(child: subprocess.Popen[str]) -> dict[str, Any]:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("\n")
    child.stdin.flush()
    line = child.stdout.readline()
    assert line, "the child died"
    result: dict[str, Any] = json.loads(line)
    return result


def test_two_processes_share_a_spool_with_exactly_one_sender(tmp_path: Path) -> None:
    port = free_port()
    dsn = f"http://publickey@127.0.0.1:{port}/42"
    children = [_spawn(dsn, tmp_path / "spool", 40) for _ in range(2)]
    try:
        ids = [_say(child)["ids"] for child in children]  # both capture while the server is down
        recorder = Recorder(port=port).start()
        try:
            senders = [_say(child)["sender"] for child in children]  # both flush: their files get sent
            assert sorted(senders) == [False, True], senders
            received = recorder.event_ids()
            assert sorted(received) == sorted(ids[0] + ids[1])
            assert len(received) == len(set(received)) == 80, "nothing sent twice"
        finally:
            recorder.close()
    finally:
        for child in children:
            child.kill()
            child.wait(10)


def test_when_the_sender_dies_another_process_takes_over(tmp_path: Path, make: Callable[..., SpoolTransport]) -> None:
    port = free_port()
    dsn = f"http://publickey@127.0.0.1:{port}/42"
    holder = _spawn(dsn, tmp_path / "spool", 10)
    try:
        ids = _say(holder)["ids"]
        time.sleep(0.2)  # the holder's sender has the lock by now
        survivor = make(dsn, spool_dir=tmp_path / "spool")
        survivor.capture_envelope(event_envelope()[0])
        time.sleep(0.3)
        assert not survivor.is_sender
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        recorder = Recorder(port=port).start()
        try:
            recorder.wait(lambda requests: len(requests) == 11)
            wait_until(lambda: survivor.is_sender)
            assert set(ids) <= set(recorder.event_ids())
        finally:
            recorder.close()
    finally:
        holder.kill()
        holder.wait(10)


def test_the_socket_timeouts_are_tight(tmp_path: Path, make: Callable[..., SpoolTransport]) -> None:
    """A server that accepts and never answers holds one send for the read timeout, then it is retried."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        transport = make(f"http://publickey@127.0.0.1:{port}/42", read_timeout=0.5)
        transport.capture_envelope(event_envelope()[0])
        accepted: list[socket.socket] = []
        deadline = time.monotonic() + 5
        listener.settimeout(0.2)
        while len(accepted) < 2 and time.monotonic() < deadline:
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
        for connection in accepted:
            connection.close()
        assert len(accepted) == 2, "after the read timeout the sender reconnects and tries again"
        assert len(spooled(transport)) == 1


# A process that forks after creating its transport (gunicorn --preload). argv: DSN, spool dir.
FORKING = r"""
import json, os, sys, uuid
from sentry_sdk.envelope import Envelope
from stackwatch.sdk.transport import SpoolTransport

def envelope(message):
    event_id = uuid.uuid4().hex
    env = Envelope(headers={"event_id": event_id})
    env.add_event({"event_id": event_id, "message": message, "level": "error"})
    return env, event_id

transport = SpoolTransport({"dsn": sys.argv[1]}, spool_dir=sys.argv[2], poll_interval=0.05, lock_retry_seconds=0.1)
first, first_id = envelope("parent")
transport.capture_envelope(first)
transport.flush(5)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read)
    second, second_id = envelope("child")
    transport.capture_envelope(second)
    transport.flush(5)
    os.write(write, json.dumps({"id": second_id, "sender": transport.is_sender}).encode())
    os._exit(0)
os.close(write)
child = json.loads(os.read(read, 4096))
os.waitpid(pid, 0)
print(json.dumps({"parent": {"id": first_id, "sender": transport.is_sender}, "child": child}), flush=True)
"""


def test_a_forked_child_leaves_sending_to_its_parent(recorder: Recorder, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKING, recorder.dsn, str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["parent"]["sender"] is True and result["child"]["sender"] is False, result
    received = recorder.event_ids()
    assert sorted(received) == sorted([result["parent"]["id"], result["child"]["id"]]), "each once"


def test_https_verifies_the_server_certificate(tmp_path: Path, make: Callable[..., SpoolTransport]) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        ["openssl", *request, "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    recorder = Recorder().start()
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        assert recorder._server is not None
        recorder._server.socket = context.wrap_socket(recorder._server.socket, server_side=True)
        dsn = f"https://publickey@localhost:{recorder.port}/42"
        untrusting = make(dsn, spool_dir=tmp_path / "a")
        untrusting.capture_envelope(event_envelope()[0])
        untrusting.flush(0.5)
        assert recorder.requests == [] and len(spooled(untrusting)) == 1, "an unverified server gets nothing"
        trusting = SpoolTransport({"dsn": dsn, "ca_certs": str(cert)}, spool_dir=tmp_path / "b", **FAST)
        try:
            envelope, event_id = event_envelope()
            trusting.capture_envelope(envelope)
            trusting.flush(5)
            assert recorder.event_ids() == [event_id]
        finally:
            trusting.kill()
    finally:
        recorder.close()
