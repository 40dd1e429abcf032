"""Stackwatch load generator: Sentry envelopes shaped like the Python SDK's, over HTTP/1.1 keep-alive.

By default it starts its own ``stackwatch serve`` (SQLite, a fresh temporary data directory, a free loopback
port), sends ``--events`` error events of about ``--event-bytes`` each over ``--connections`` concurrent
connections, waits until the digest has emptied the inbox, checks that the server stored exactly the events it
acknowledged, and reports throughput, ingest latency and the server's peak memory. With ``--dsn`` it targets a
server that is already running (loopback only).

Two modes: as fast as the server answers (the default), or open-loop at ``--rate`` events per second, where each
request's latency is counted from the moment it was due, so a slow answer cannot hide the queueing behind it.

    python -m bench.loadgen --events 20000 --connections 16
    python -m bench.loadgen --events 15000 --rate 500 --json rate-500.json

All request bodies are built and compressed before the clock starts; the sending side is plain asyncio streams
(uvloop when installed) so that it takes as little as possible of the CPU it shares with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import ipaddress
import itertools
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Target", "build_requests", "main", "run"]

# The bars of DESIGN.md §4 that this benchmark measures.
BAR_EVENTS_PER_SECOND = 1000.0
BAR_P99_MS = 10.0
BAR_RSS_MB = 250.0

SDK_NAME = "sentry.python"
SDK_VERSION = "2.75.0"
_DSN_LINE = re.compile(r"^\s*DSN:\s+(\S+)\s*$", re.MULTILINE)
_METRIC_LINE = re.compile(r"^(stackwatch_[a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$", re.MULTILINE)


# --- the target -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    host: str
    port: int
    project_id: int

    @classmethod
    def from_dsn(cls, dsn: str) -> Target:
        parts = urlsplit(dsn)
        if parts.scheme != "http" or not parts.username or not parts.hostname:
            raise ValueError(f"expected a DSN like http://KEY@127.0.0.1:8000/1, got {dsn!r}")
        project = parts.path.strip("/")
        if not project.isdigit():
            raise ValueError(f"the DSN's path must be a numeric project id, got {parts.path!r}")
        return cls(parts.username, parts.hostname, parts.port or 80, int(project))

    def check_loopback(self) -> None:
        """Refuse anything but this machine: a load generator must never be pointed at someone else's server."""
        for info in socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
            address = ipaddress.ip_address(info[4][0])
            if not address.is_loopback:
                raise ValueError(f"{self.host} resolves to {address}, which is not a loopback address")

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


# --- the events -----------------------------------------------------------------------------------------------

_EXCEPTIONS = (
    ("ConnectionError", "POST https://api.example.com/hooks/{n}?token=abcdef{n} failed: connection refused"),
    ("TimeoutError", "step {n} timed out after 30.0 seconds"),
    ("KeyError", "'field_{n}'"),
    ("ValueError", "invalid literal for int() with base 10: 'order-{n}'"),
    ("RuntimeError", "run {n} exceeded max retries (5)"),
    ("PermissionError", "tenant {n} may not call this endpoint"),
    ("TypeError", "unsupported operand type(s) for +: 'int' and 'NoneType' in step {n}"),
    ("httpx.HTTPStatusError", "Server error '503 Service Unavailable' for url 'https://crm.example.com/v2/{n}'"),
)
_AREAS = (
    ("http-executor", "meshhook.executor.http", "/srv/meshhook/executor/http.py"),
    ("orchestrator", "meshhook.orchestrator.scheduler", "/srv/meshhook/orchestrator/scheduler.py"),
    ("api", "meshhook.api.handlers", "/srv/meshhook/api/handlers.py"),
    ("http-executor", "meshhook.executor.transform", "/srv/meshhook/executor/transform.py"),
)
_VERBS = ("call", "fetch", "parse", "send", "apply", "load", "store", "check", "render", "merge")
_NOUNS = ("crm", "order", "invoice", "payload", "webhook", "schedule", "tenant", "secret", "mapping", "retry")
_STEPS = ("fetch-order", "call-crm", "transform", "notify", "persist", "branch")
_BREADCRUMB_WORDS = ("step", "http", "queue", "db", "cache", "auth", "webhook", "retry")


def _now_iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _frame(module: str, path: str, function: str, line: int, source: str, in_app: bool, var: str) -> dict[str, Any]:
    return {
        "filename": path.rsplit("/", 1)[-1],
        "abs_path": path,
        "function": function,
        "module": module,
        "lineno": line,
        "pre_context": [
            f"    def {function}(self, ctx, attempt=1):",
            f'        """{function.replace("_", " ")} for the workflow step in ctx."""',
            "        log.debug('step %s attempt %d', ctx.step_id, attempt)",
            f"        {var} = ctx.payload.get({var!r})",
            "        if attempt > self.max_attempts:",
        ],
        "context_line": source,
        "post_context": [
            "        self.metrics.observe(time.monotonic() - started)",
            "        return result",
            "",
            f"    def _{function}_fallback(self, ctx):",
            "        return None",
        ],
        "vars": {
            "self": f"<{module}.Step object at 0x7f5f43ab{line:04x}>",
            "ctx": "<StepContext workflow_id='wf_orders' step='call-crm'>",
            var: f"'{var}-value'",
            "attempt": "2",
        },
        "in_app": in_app,
    }


@dataclass(frozen=True, slots=True)
class _Issue:
    exc_type: str
    value_template: str
    component: str
    frames: list[dict[str, Any]]


def _issue(k: int) -> _Issue:
    """Issue ``k``: its own exception type, module and functions, so its stack-trace grouping hash is its own."""
    exc_type, value_template = _EXCEPTIONS[k % len(_EXCEPTIONS)]
    component, module, path = _AREAS[k % len(_AREAS)]
    verb, noun = _VERBS[k % len(_VERBS)], _NOUNS[(k // len(_VERBS)) % len(_NOUNS)]
    function = f"{verb}_{noun}_{k}"
    frames = [
        _frame(
            "meshhook.worker.runner",
            "/srv/meshhook/worker/runner.py",
            "run_step",
            88,
            "            result = step.execute(ctx)",
            True,
            "step",
        ),
        _frame(module, path, function, 40 + k % 400, f"        data = self._{function}(ctx.payload)", True, noun),
        _frame(
            module,
            path,
            f"_{function}",
            120 + k % 300,
            f"        raise {exc_type.rsplit('.', 1)[-1]}(msg)",
            True,
            "msg",
        ),
    ]
    if "http" in module:  # a library frame (not in-app) between the step and the raise
        library = _frame(
            "urllib3.connectionpool",
            "/usr/local/lib/python3.11/site-packages/urllib3/connectionpool.py",
            "urlopen",
            793,
            "            response = self._make_request(conn, method, url, **kw)",
            False,
            "conn",
        )
        frames.insert(2, library)
    return _Issue(exc_type, value_template, component, frames)


def _event(rng: random.Random, issue: _Issue, stamp: float, event_id: str, users: int) -> dict[str, Any]:
    n = rng.randrange(1_000_000)
    workflow_id = f"wf_{rng.randrange(40)}"
    run_id = f"run_{rng.randrange(10**9):09d}"
    tenant = f"tenant-{rng.randrange(25)}"
    user = rng.randrange(users)
    step = rng.choice(_STEPS)
    value = issue.value_template.format(n=n)
    return {
        "level": "error",
        "exception": {
            "values": [
                {
                    "mechanism": {"type": "generic", "handled": True},
                    "module": None,
                    "type": issue.exc_type,
                    "value": value,
                    "stacktrace": {"frames": issue.frames},
                }
            ]
        },
        "event_id": event_id,
        "timestamp": _now_iso(stamp),
        "contexts": {
            "workflow": {"workflow_id": workflow_id, "run_id": run_id, "step": step, "attempt": 1 + n % 3},
            "trace": {"trace_id": uuid.UUID(int=rng.getrandbits(128)).hex, "span_id": f"{rng.getrandbits(64):016x}"},
            "runtime": {"name": "CPython", "version": "3.11.7", "build": "3.11.7 (main, May  9 2026) [GCC 12.2.0]"},
        },
        "user": {"id": f"user-{user}", "email": f"user{user}@example.com"},
        "transaction_info": {},
        "tags": {"component": issue.component, "workflow_id": workflow_id, "run_id": run_id, "tenant": tenant},
        "breadcrumbs": {"values": []},
        "extra": {"sys.argv": ["worker.py"]},
        "modules": {"urllib3": "2.8.0", "certifi": "2026.10.19.post1", "httpx": "0.28.1", "sentry-sdk": SDK_VERSION},
        "release": "meshhook-worker@1.4.2",
        "environment": "production",
        "server_name": f"worker-{n % 8}",
        "sdk": {
            "name": SDK_NAME,
            "version": SDK_VERSION,
            "packages": [{"name": "pypi:sentry-sdk", "version": SDK_VERSION}],
            "integrations": ["argv", "atexit", "dedupe", "excepthook", "logging", "modules", "stdlib", "threading"],
        },
        "platform": "python",
    }


def _breadcrumb(rng: random.Random, stamp: float) -> dict[str, Any]:
    word = rng.choice(_BREADCRUMB_WORDS)
    return {
        "category": word,
        "message": f"{word} {rng.choice(_STEPS)} ok in {rng.randrange(1, 900)} ms (attempt {rng.randrange(1, 4)})",
        "level": "info",
        "timestamp": _now_iso(stamp - rng.random()),
        "type": "default",
    }


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _envelope(target: Target, event: dict[str, Any], stamp: float) -> bytes:
    payload = _dumps(event)
    header = {
        "event_id": event["event_id"],
        "sent_at": _now_iso(stamp),
        "trace": {
            "trace_id": event["contexts"]["trace"]["trace_id"],
            "environment": event["environment"],
            "release": event["release"],
            "public_key": target.key,
            "sample_rate": "1.0",
        },
    }
    item = {"type": "event", "content_type": "application/json", "length": len(payload)}
    return _dumps(header) + b"\n" + _dumps(item) + b"\n" + payload + b"\n"


@dataclass(slots=True)
class Requests:
    """Ready-to-write HTTP requests, one per event, and what they are made of."""

    raw: list[bytes]
    event_bytes: float  # mean size of the event JSON
    body_bytes: float  # mean size of the gzip-compressed envelope on the wire
    issues: int


def build_requests(
    target: Target, count: int, *, issues: int, users: int, event_bytes: int, seed: int, gzip_level: int = 6
) -> Requests:
    """``count`` envelope requests over ``issues`` distinct issues, each event padded to about ``event_bytes``."""
    rng = random.Random(seed)
    shapes = [_issue(k) for k in range(issues)]
    auth = f"Sentry sentry_key={target.key}, sentry_version=7, sentry_client={SDK_NAME}/{SDK_VERSION}"
    head = (
        f"POST /api/{target.project_id}/envelope/ HTTP/1.1\r\n"
        f"Host: {target.authority}\r\n"
        f"User-Agent: {SDK_NAME}/{SDK_VERSION}\r\n"
        "Accept-Encoding: identity\r\n"
        "Content-Type: application/x-sentry-envelope\r\n"
        "Content-Encoding: gzip\r\n"
        f"X-Sentry-Auth: {auth}\r\n"
    )
    raw: list[bytes] = []
    event_total = body_total = 0
    stamp = time.time()
    for _ in range(count):
        event = _event(rng, rng.choice(shapes), stamp, uuid.uuid4().hex, users)
        size = len(_dumps(event))
        crumbs = event["breadcrumbs"]["values"]
        while size < event_bytes:  # pad with breadcrumbs, as a real worker's trail of steps would
            crumb = _breadcrumb(rng, stamp)
            crumbs.append(crumb)
            size += len(_dumps(crumb)) + 1
        envelope = _envelope(target, event, stamp)
        body = gzip.compress(envelope, compresslevel=gzip_level, mtime=0)
        event_total += size
        body_total += len(body)
        raw.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body)
    return Requests(raw, event_total / max(count, 1), body_total / max(count, 1), issues)


# --- HTTP/1.1 over raw streams --------------------------------------------------------------------------------


class ConnectionLost(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int):
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._reader, self._writer

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one request; return the status and body. A connection the server closed while idle is reopened
        and the request sent again only when not a byte of an answer had arrived."""
        for attempt in (1, 2):
            fresh = self._reader is None
            reader, writer = await self._open()
            try:
                writer.write(data)
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                await self.close()
                partial = getattr(exc, "partial", b"")
                if attempt == 1 and not fresh and not partial:
                    continue
                raise ConnectionLost(str(exc) or type(exc).__name__) from None
            try:
                return await self._rest(reader, head)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                await self.close()
                raise ConnectionLost(str(exc) or type(exc).__name__) from None
        raise AssertionError("unreachable")

    async def _rest(self, reader: asyncio.StreamReader, head: bytes) -> tuple[int, bytes]:
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            body = b"".join(chunks)
        else:
            body = await reader.read()
            await self.close()
        if headers.get("connection") == "close":
            await self.close()
        return status, body

    async def get(self, target: Target, path: str) -> tuple[int, bytes]:
        return await self.request(f"GET {path} HTTP/1.1\r\nHost: {target.authority}\r\n\r\n".encode("ascii"))

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# --- the server process ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stackwatch_command() -> list[str]:
    script = Path(sys.executable).with_name("stackwatch")
    if script.exists():
        return [str(script)]
    found = shutil.which("stackwatch")
    if found:
        return [found]
    return [sys.executable, "-c", "from stackwatch.cli import main; main()"]


def _add_alert_rules(data_dir: Path, env: dict[str, str]) -> None:
    """Alerting at its busiest: rules whose filters every event passes, so each batch evaluates all of them
    (throttle rows, window counts), and a webhook that refuses connections, so the dispatcher retries too."""
    base = [*_stackwatch_command(), "alert"]
    where = ["--data-dir", str(data_dir)]
    config = json.dumps({"url": f"http://127.0.0.1:{_free_port()}/hook"})
    created = subprocess.run(
        [*base, "channel", "create", "default", "Down", "--kind", "webhook", "--config", config, *where],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    channel = created.stdout.split()[-1]
    rules = [
        ["Every error", "--trigger", "level", "--level", "error"],
        ["Busy", "--trigger", "event_frequency", "--threshold", "100", "--window-minutes", "5"],
        ["Many users", "--trigger", "impact", "--impact-kind", "users", "--threshold", "20", "--window-minutes", "5"],
    ]
    for name, *spec in rules:
        command = [*base, "rule", "create", "default", name, *spec, "--channel", channel, *where]
        subprocess.run(command, env=env, capture_output=True, check=True)


class OwnServer:
    """``stackwatch serve`` on a free loopback port with a fresh data directory (SQLite)."""

    def __init__(self, data_dir: Path, port: int, env: dict[str, str]):
        self.data_dir = data_dir
        self.port = port
        self.log_path = data_dir.parent / "server.log"
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def database(self) -> Path:
        return self.data_dir / "stackwatch.sqlite3"

    def start(self, timeout: float = 60.0) -> str:
        command = [*_stackwatch_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stackwatch serve exited with {self.process.returncode}:\n{self.log()}")
            found = _DSN_LINE.search(self.log())
            if found:
                return found.group(1)
            time.sleep(0.05)
        raise RuntimeError(f"stackwatch serve printed no DSN within {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> int | None:
        """Ask uvicorn to shut down gracefully; kill it if it does not. Returns the exit status."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=10)


def _proc_status_kb(pid: int, name: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def _reset_peak_rss(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux ``clear_refs`` value 5); whether that worked."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of every thread of the process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float | None:
    """CPU time all processes of the machine spent busy (every core), from ``/proc/stat``."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- measuring ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Options:
    events: int
    connections: int
    rate: float | None
    max_seconds: float
    drain_seconds: float
    issues: int
    users: int
    event_bytes: int
    seed: int
    server_pid: int | None
    alert_rules: bool = False


@dataclass(slots=True)
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, every answered request
    service: list[float] = field(default_factory=list)  # rate mode: from the actual write, not the due time
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    late: int = 0  # rate mode: requests that left more than 1 ms after they were due
    # Rate mode: each answered request's due time (time.perf_counter()), latency from it, and status.
    answers: list[tuple[float, float, int]] = field(default_factory=list)
    first_send: float = 0.0
    last_answer: float = 0.0


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(fraction * len(sorted_values) + 0.999999) - 1))
    return sorted_values[rank]


def _latency_ms(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "p50": ms(_percentile(ordered, 0.50)),
        "p90": ms(_percentile(ordered, 0.90)),
        "p99": ms(_percentile(ordered, 0.99)),
        "p999": ms(_percentile(ordered, 0.999)),
        "max": ms(ordered[-1] if ordered else None),
        "mean": ms(sum(ordered) / len(ordered) if ordered else None),
    }


async def _send_one(connection: Connection, data: bytes, tally: Tally, due: float | None) -> None:
    started = time.perf_counter()
    try:
        status, _ = await connection.request(data)
    except ConnectionLost as exc:
        tally.errors[str(exc)[:80]] += 1
        return
    answered = time.perf_counter()
    tally.statuses[status] += 1
    tally.latencies.append(answered - (started if due is None else due))
    if due is not None:
        tally.service.append(answered - started)
        tally.answers.append((due, answered - due, status))
        if started - due > 0.001:
            tally.late += 1
    tally.last_answer = answered


async def _max_throughput(target: Target, raw: list[bytes], options: Options, tally: Tally) -> None:
    indices = itertools.count()
    deadline = time.perf_counter() + options.max_seconds

    async def worker() -> None:
        connection = Connection(target.host, target.port)
        try:
            while (index := next(indices)) < len(raw) and time.perf_counter() < deadline:
                await _send_one(connection, raw[index], tally, None)
        finally:
            await connection.close()

    tally.first_send = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(options.connections)))


async def fixed_rate(
    target: Target, raw: list[bytes], tally: Tally, *, rate: float, connections: int, max_seconds: float
) -> None:
    """Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to the ones before it."""
    interval = 1.0 / rate
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def worker() -> None:
        connection = Connection(target.host, target.port)
        try:
            while (job := await queue.get()) is not None:
                index, due = job
                await _send_one(connection, raw[index], tally, due)
        finally:
            await connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = tally.first_send = time.perf_counter()
    deadline = start + max_seconds
    index = 0
    while index < len(raw):
        now = time.perf_counter()
        if now >= deadline:
            break
        while index < len(raw) and start + index * interval <= now:  # everything that is due, even if late
            queue.put_nowait((index, start + index * interval))
            index += 1
        if index < len(raw):
            await asyncio.sleep(max(0.0, start + index * interval - time.perf_counter()))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)


async def _metrics(connection: Connection, target: Target) -> dict[str, float]:
    status, body = await connection.get(target, "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    values: dict[str, float] = {}
    for name, value in _METRIC_LINE.findall(body.decode("utf-8", "replace")):
        values[name] = values.get(name, 0.0) + float(value)  # labelled series summed
    return values


async def _backlog(connection: Connection, target: Target) -> int | None:
    status, body = await connection.get(target, "/readyz")
    if status != 200:
        return None
    value = json.loads(body).get("inbox_backlog")
    return int(value) if isinstance(value, int) else None


@dataclass(slots=True)
class _Sampler:
    """Samples the inbox backlog and the server's RSS while the load runs."""

    target: Target
    pid: int | None
    peak_backlog: int = 0
    peak_rss_kb: int = 0
    samples: int = 0

    def sample_rss(self) -> None:
        if self.pid is not None:
            self.peak_rss_kb = max(self.peak_rss_kb, _proc_status_kb(self.pid, "VmRSS") or 0)

    async def run(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        connection = Connection(self.target.host, self.target.port)
        try:
            while not stop.is_set():
                self.sample_rss()
                with contextlib.suppress(ConnectionLost, RuntimeError, ValueError):
                    backlog = await _backlog(connection, self.target)
                    self.peak_backlog = max(self.peak_backlog, backlog or 0)
                self.samples += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
        finally:
            await connection.close()


async def _measure(target: Target, requests: Requests, options: Options, pid: int | None) -> dict[str, Any]:
    control = Connection(target.host, target.port)
    before = await _metrics(control, target)
    cpu_before = _proc_cpu_seconds(pid) if pid is not None else None
    own_cpu_before = _own_cpu_seconds()
    machine_before = _machine_busy_seconds()
    wall_before = time.perf_counter()
    tally = Tally()
    sampler = _Sampler(target, pid)
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    if options.rate is None:
        await _max_throughput(target, requests.raw, options, tally)
    else:
        assert options.rate is not None
        await fixed_rate(
            target,
            requests.raw,
            tally,
            rate=options.rate,
            connections=options.connections,
            max_seconds=options.max_seconds,
        )
    sent_end = time.perf_counter()
    own_cpu_sending = _own_cpu_seconds() - own_cpu_before
    accepted = tally.statuses.get(200, 0)

    # End to end: until the digest has emptied the inbox of everything acknowledged.
    drained_at: float | None = None
    drain_deadline = time.perf_counter() + options.drain_seconds
    while time.perf_counter() < drain_deadline:
        sampler.sample_rss()
        backlog = await _backlog(control, target)
        if backlog == 0:
            drained_at = time.perf_counter()
            break
        await asyncio.sleep(0.02)
    stop.set()
    await sampling
    sampler.sample_rss()
    cpu_after = _proc_cpu_seconds(pid) if pid is not None else None
    machine_after = _machine_busy_seconds()
    own_cpu_total = _own_cpu_seconds() - own_cpu_before
    wall = time.perf_counter() - wall_before

    # The digest counts a batch just after committing it: give the counter a moment to catch up.
    after = await _metrics(control, target)
    settle = time.perf_counter() + 5
    while drained_at is not None and time.perf_counter() < settle:
        stored = after.get("stackwatch_digest_events_total", 0) - before.get("stackwatch_digest_events_total", 0)
        if stored >= accepted:
            break
        await asyncio.sleep(0.05)
        after = await _metrics(control, target)
    await control.close()

    def delta(name: str) -> int:
        return int(after.get(name, 0) - before.get(name, 0))

    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    machine_cpu = None if machine_before is None or machine_after is None else machine_after - machine_before
    other_cpu = None
    if machine_cpu is not None and server_cpu is not None:
        other_cpu = max(0.0, machine_cpu - server_cpu - own_cpu_total)
    send_seconds = max(1e-9, (tally.last_answer or sent_end) - tally.first_send)
    e2e_seconds = None if drained_at is None else drained_at - tally.first_send
    digested = delta("stackwatch_digest_events_total")
    non_200 = {str(status): count for status, count in sorted(tally.statuses.items()) if status != 200}
    result: dict[str, Any] = {
        "sent": sum(tally.statuses.values()) + sum(tally.errors.values()),
        "accepted": accepted,
        "non_200": non_200,
        "connection_errors": dict(tally.errors),
        "send_seconds": round(send_seconds, 3),
        "accepted_per_second": round(accepted / send_seconds, 1),
        "drained": drained_at is not None,
        "end_to_end_seconds": None if e2e_seconds is None else round(e2e_seconds, 3),
        "digested_per_second": None if e2e_seconds is None else round(digested / e2e_seconds, 1),
        "digest_lag_seconds": None if drained_at is None else round(drained_at - sent_end, 3),
        "peak_inbox_backlog_sampled": sampler.peak_backlog,
        "latency_ms": _latency_ms(tally.latencies),
        "server": {
            "digest_events": digested,
            "digest_duplicates": delta("stackwatch_digest_duplicates_total"),
            "digest_invalid_items": delta("stackwatch_digest_invalid_items_total"),
            "digest_batches": delta("stackwatch_digest_batches_total"),
            "digest_failures": delta("stackwatch_digest_failures_total"),
            "issues_created": delta("stackwatch_issues_created_total"),
            "ingest_envelopes": delta("stackwatch_ingest_envelopes_total"),
            "cpu_seconds": None if server_cpu is None else round(server_cpu, 2),
            "cpu_ms_per_event": None if server_cpu is None or not accepted else round(1000 * server_cpu / accepted, 3),
            "rss_peak_sampled_mb": round(sampler.peak_rss_kb / 1024, 1) if pid is not None else None,
        },
        "loadgen_cpu_seconds_sending": round(own_cpu_sending, 2),
        # Other processes competing for the same cores make every number here worse: judge a run by this.
        "cpu_load": {
            "busy_cores_mean": None if machine_cpu is None else round(machine_cpu / wall, 2),
            "other_processes_cores_mean": None if other_cpu is None else round(other_cpu / wall, 2),
        },
        "verified": digested == accepted and delta("stackwatch_digest_duplicates_total") == 0,
    }
    if options.rate is not None:
        result["latency_note"] = "measured from each request's due time (open loop), service time separately"
        result["service_latency_ms"] = _latency_ms(tally.service)
        result["late_sends"] = tally.late
        result["achieved_rate"] = round(len(tally.latencies) / send_seconds, 1)
    return result


def _count_stored_events(database: Path) -> int | None:
    """Rows in the events table, read straight from the SQLite file (a check independent of the metrics)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as connection:
            return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return None


async def _wait_ready(target: Target, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    connection = Connection(target.host, target.port)
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(ConnectionLost, OSError):
                if (await connection.get(target, "/readyz"))[0] == 200:
                    return
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    raise RuntimeError(f"{target.authority}/readyz did not answer 200 within {timeout:.0f} s")


def _event_loop_policy() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run(options: Options, dsn: str | None, keep_data: bool = False) -> dict[str, Any]:
    """Start a server unless ``dsn`` is given, build the requests, measure; the report as a dict."""
    loop_kind = _event_loop_policy()
    server: OwnServer | None = None
    workdir: Path | None = None
    try:
        if dsn is None:
            workdir = Path(tempfile.mkdtemp(prefix="stackwatch-bench-"))
            env = {k: v for k, v in os.environ.items() if not k.startswith("STACKWATCH_")}
            env["STACKWATCH_LOG_LEVEL"] = "warning"
            server = OwnServer(workdir / "data", _free_port(), env)
            dsn = server.start()
            if options.alert_rules:
                _add_alert_rules(server.data_dir, env)
        target = Target.from_dsn(dsn)
        target.check_loopback()
        asyncio.run(_wait_ready(target, 60))
        pid = server.pid if server is not None else options.server_pid
        rss_at_start = _proc_status_kb(pid, "VmRSS") if pid is not None else None

        built = time.perf_counter()
        requests = build_requests(
            target,
            options.events,
            issues=options.issues,
            users=options.users,
            event_bytes=options.event_bytes,
            seed=options.seed,
        )
        build_seconds = time.perf_counter() - built
        # The server's first start hashes the admin password with argon2 (64 MiB): start the peak afresh, so that
        # it is the peak under this load. Needs write access to the process's clear_refs (the same user).
        hwm_reset = pid is not None and _reset_peak_rss(pid)
        result = asyncio.run(_measure(target, requests, options, pid))

        report: dict[str, Any] = {
            "benchmark": "stackwatch-ingest",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "event_loop": loop_kind,
            },
            "config": {
                "mode": "max" if options.rate is None else "rate",
                "rate": options.rate,
                "events": options.events,
                "connections": options.connections,
                "issues": options.issues,
                "users": options.users,
                "event_json_bytes_mean": round(requests.event_bytes),
                "gzip_body_bytes_mean": round(requests.body_bytes),
                "max_seconds": options.max_seconds,
                "seed": options.seed,
                "alert_rules": options.alert_rules,
                "server": "started by loadgen (SQLite, fresh data dir)" if server is not None else "external",
                "build_seconds": round(build_seconds, 2),
            },
            **result,
        }
        if pid is not None:
            report["server"]["rss_at_start_mb"] = None if rss_at_start is None else round(rss_at_start / 1024, 1)
            hwm = _proc_status_kb(pid, "VmHWM")
            report["server"]["rss_peak_mb"] = None if hwm is None else round(hwm / 1024, 1)
            report["server"]["rss_peak_scope"] = "this run (VmHWM reset)" if hwm_reset else "process lifetime (VmHWM)"
        if server is not None:
            stored = _count_stored_events(server.database)
            report["server"]["events_table_rows"] = stored
            report["verified"] = report["verified"] and stored == result["accepted"]
        report["bars"] = _bars(report)
        return report
    finally:
        if server is not None:
            status = server.stop()
            if status not in (0, None):
                print(f"stackwatch serve exited with {status}; its log:\n{server.log()[-4000:]}", file=sys.stderr)
        if workdir is not None:
            if keep_data:
                print(f"data kept in {workdir}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)


def _bars(report: dict[str, Any]) -> dict[str, Any]:
    """DESIGN.md §4: throughput is judged in max mode, latency in rate mode, memory in both."""
    bars: dict[str, Any] = {}
    rss = report["server"].get("rss_peak_mb") or report["server"].get("rss_peak_sampled_mb")
    if rss is not None:
        bars["rss_mb_le_250"] = rss <= BAR_RSS_MB
    if report["config"]["mode"] == "max" and report["digested_per_second"] is not None:
        bars["end_to_end_events_per_s_ge_1000"] = report["digested_per_second"] >= BAR_EVENTS_PER_SECOND
    p99 = report["latency_ms"]["p99"]
    if report["config"]["mode"] == "rate" and p99 is not None:
        bars["ingest_p99_ms_le_10"] = p99 <= BAR_P99_MS
    return bars


def summary_line(report: dict[str, Any]) -> str:
    config, latency, server = report["config"], report["latency_ms"], report["server"]
    mode = "max" if config["mode"] == "max" else f"rate={config['rate']:g}/s"
    rss = server.get("rss_peak_mb") or server.get("rss_peak_sampled_mb")
    non_200 = sum(report["non_200"].values()) + sum(report["connection_errors"].values())
    failed = [name for name, ok in report["bars"].items() if not ok]
    return (
        f"stackwatch bench {mode} events={config['events']} conns={config['connections']}: "
        f"accepted={report['accepted']} non200/errors={non_200} "
        f"accepted/s={report['accepted_per_second']:.0f} digested/s={report['digested_per_second']} "
        f"e2e={report['end_to_end_seconds']}s "
        f"latency ms p50={latency['p50']} p99={latency['p99']} max={latency['max']} "
        f"rss_peak={rss}MB other_procs_cores={report['cpu_load']['other_processes_cores_mean']} "
        f"verified={report['verified']} "
        f"bars={'ok' if not failed else 'FAILED ' + ','.join(failed)}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="target a running server (loopback only) instead of starting one")
    parser.add_argument("--server-pid", type=int, help="with --dsn: the server's pid, to sample its RSS and CPU")
    parser.add_argument("--events", type=int, default=20000, help="events to send (default 20000)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (16)")
    parser.add_argument("--rate", type=float, help="open-loop events per second (default: as fast as possible)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long (120)")
    parser.add_argument("--drain-seconds", type=float, default=300.0, help="wait this long for the digest (300)")
    parser.add_argument("--issues", type=int, default=50, help="distinct issues the events spread over (50)")
    parser.add_argument("--users", type=int, default=1000, help="distinct users (1000)")
    parser.add_argument("--event-bytes", type=int, default=4096, help="size of each event's JSON (4096)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the event contents (1)")
    parser.add_argument("--json", type=Path, help="write the JSON report here instead of stdout")
    parser.add_argument(
        "--alert-rules",
        action="store_true",
        help="add alert rules that every event passes (level, frequency, impact) to a webhook that is down",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the started server's data directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.events <= 0 or args.connections <= 0 or (args.rate is not None and args.rate <= 0):
        raise SystemExit("--events, --connections and --rate must be positive")
    if args.issues <= 0 or args.users <= 0:
        raise SystemExit("--issues and --users must be positive")
    options = Options(
        events=args.events,
        connections=args.connections,
        rate=args.rate,
        max_seconds=args.max_seconds,
        drain_seconds=args.drain_seconds,
        issues=args.issues,
        users=args.users,
        event_bytes=args.event_bytes,
        seed=args.seed,
        server_pid=args.server_pid,
        alert_rules=args.alert_rules,
    )
    try:
        report = run(options, args.dsn, keep_data=args.keep_data)
    except (ValueError, RuntimeError, OSError) as exc:  # a bad DSN, a server that did not start or answer
        raise SystemExit(f"loadgen: {exc}") from None
    text = json.dumps(report, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    print(summary_line(report), file=sys.stderr if args.json is None else sys.stdout)
    return 0 if report["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
