"""Synthetic issues and events for performance checks, written as the digest would have left them.

The digest's path (envelope → normalize → group → upsert) costs ~1 ms an event; a million events through it take
a quarter of an hour. Here the rows are made directly: issues first (with placeholder counters, so events can
reference them), then each issue's events in timestamp order together with the rows derived from them (hourly
counts, tag facets, impact), then the issues' counters and the project's hourly counts per level. Everything
derived is computed from the generated events themselves, issue by issue, so it is consistent by construction:
the hourly counts and each facet of an issue add up to its ``event_count``, and ``*_count`` equals the number of
impact rows of each kind.

Payloads have the normalized shape the digest stores (``normalize_event`` + the ``grouping`` key), compressed
with zstd the same way, so the event API decodes them. Deterministic for a given ``seed`` and clock.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import orjson
import zstandard
from sqlalchemy import Engine, Table, bindparam, insert, select, update

from stackwatch.server.digest.grouping import CURRENT
from stackwatch.server.digest.items import hour_of
from stackwatch.server.storage.schema import (
    IMPACT_FACETS,
    events,
    grouping_hashes,
    issue_hourly,
    issue_impact,
    issue_minutes,
    issue_tags,
    issues,
    project_hourly,
    projects,
)

__all__ = ["SeedError", "SeedOptions", "SeedResult", "seed_project"]

COMPONENTS = ("api", "orchestrator", "http-executor")
_COMPONENT_WEIGHTS = (0.35, 0.4, 0.25)
_STEPS = {
    "api": ("verify-signature", "parse-body", "enqueue"),
    "orchestrator": ("schedule", "acquire-lease", "fan-out", "checkpoint"),
    "http-executor": ("render-request", "send", "transform", "callback"),
}
# (exception type, message with a {n} placeholder, module of the raising code, function names)
_ERRORS = {
    "api": (
        ("SignatureMismatch", "webhook signature does not match for source {n}", "meshhook.api.webhooks", "verify"),
        ("ValidationError", "field 'payload.items[{n}]' is not a valid object", "meshhook.api.schemas", "validate"),
        ("PermissionDenied", "token scope lacks workflows:{n}:write", "meshhook.api.auth", "authorize"),
        ("KeyError", "'tenant_{n}'", "meshhook.api.routing", "route_event"),
    ),
    "orchestrator": (
        ("LeaseLost", "lease {n} expired before checkpoint", "meshhook.orchestrator.leases", "renew"),
        ("StateCorrupt", "state is corrupt: step {n} has no parent", "meshhook.orchestrator.state", "load_run"),
        ("DeadlockDetected", "run waits on itself through step {n}", "meshhook.orchestrator.graph", "plan"),
        ("RuntimeError", "scheduler queue {n} is closed", "meshhook.orchestrator.scheduler", "dispatch"),
    ),
    "http-executor": (
        ("HTTPStatusError", "target answered 503 for partner-{n}.example/hooks", "meshhook.executor.http", "send"),
        ("ReadTimeout", "no answer from partner-{n}.example within 30s", "meshhook.executor.http", "receive"),
        ("TransformError", "jq expression {n} failed on a malformed payload", "meshhook.executor.transform", "apply"),
        ("JSONDecodeError", "Expecting value: line 1 column {n} (char 0)", "meshhook.executor.callbacks", "parse"),
    ),
}
_LIBRARY_FRAMES = (
    ("starlette.routing", "handle", "starlette/routing.py"),
    ("httpx._client", "send", "httpx/_client.py"),
    ("asyncio.tasks", "wait_for", "asyncio/tasks.py"),
    ("sqlalchemy.engine.base", "execute", "sqlalchemy/engine/base.py"),
)
_LEVELS = (("error", 0.72), ("warning", 0.14), ("info", 0.1), ("fatal", 0.04))
_STATUSES = (("unresolved", 0.8), ("resolved", 0.12), ("ignored", 0.08))
_ENVIRONMENTS = ("production", "staging", "development")
_WORKFLOW_NAMES = ("invoice", "order", "refund", "signup", "shipment", "payout", "inventory", "ticket", "lead", "audit")
_WORKFLOW_VERBS = ("sync", "export", "notify", "enrich", "archive")
_RELEASES = 6
_TENANTS = 150
_USERS = 5000
_HOSTS = 4
_ZIPF_EXPONENT = 1.05


class SeedError(Exception):
    """The seed cannot run (no such project, bad sizes); the message says why."""


@dataclass(frozen=True, slots=True)
class SeedOptions:
    events: int
    issues: int
    days: float = 30.0
    seed: int = 1
    chunk: int = 10_000


@dataclass(slots=True)
class SeedResult:
    issues: int = 0
    events: int = 0
    hourly: int = 0
    tags: int = 0
    impact: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class _Issue:
    """One issue's fixed parts: what every one of its events shares."""

    id: int
    grouping_hash: str
    component: str
    level: str
    status: str
    title: str
    culprit: str
    type: str
    value: str
    unhandled: bool
    workflows: list[str]
    environment_weights: tuple[float, float, float]
    start: float
    end: float
    exception: dict[str, Any] = field(default_factory=dict)


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([name for name, _ in choices], [weight for _, weight in choices])[0]


def _plan_issue(rng: random.Random, index: int, workflows: list[str], now: float, window: float) -> _Issue:
    component = rng.choices(COMPONENTS, _COMPONENT_WEIGHTS)[0]
    kind, template, module, function = rng.choice(_ERRORS[component])
    value = template.format(n=index)
    level = _weighted(rng, _LEVELS)
    status = _weighted(rng, _STATUSES)
    unhandled = level == "fatal" or rng.random() < 0.15
    start = now - window * rng.random() ** 0.7
    end = start + (now - start) * rng.uniform(0.3, 0.95) if status == "resolved" else now
    frames = [
        {"filename": path, "abs_path": f"/usr/lib/python3.12/site-packages/{path}", "module": mod, "function": fn,
         "lineno": rng.randrange(20, 900), "in_app": False}
        for mod, fn, path in rng.sample(_LIBRARY_FRAMES, rng.randint(1, 2))
    ]  # fmt: skip
    for depth in range(rng.randint(2, 3)):
        name = function if depth == 0 else f"{function}_{('inner', 'step', 'call')[depth - 1]}"
        frames.append(
            {
                "filename": module.replace(".", "/") + ".py",
                "abs_path": f"/srv/meshhook/{module.replace('.', '/')}.py",
                "module": module,
                "function": name,
                "lineno": rng.randrange(10, 400),
                "in_app": True,
                "pre_context": [f"    item = state.get({index})", "    if item is None:"],
                "context_line": f"        raise {kind}(message)",
                "post_context": ["    return item"],
                "vars": {"attempt": str(rng.randint(1, 5)), "message": repr(value)},
            }
        )
    exception = {
        "type": kind,
        "value": value,
        "module": module,
        "mechanism": {"type": "excepthook" if unhandled else "generic", "handled": not unhandled},
        "stacktrace": {"frames": frames},
    }
    production = rng.uniform(0.6, 0.95)
    return _Issue(
        id=0,
        grouping_hash=f"{rng.getrandbits(128):032x}",
        component=component,
        level=level,
        status=status,
        title=f"{kind}: {value}",
        culprit=f"{module} in {frames[-1]['function']}",
        type=kind,
        value=value,
        unhandled=unhandled,
        workflows=rng.sample(workflows, rng.choice((1, 1, 2, 3))),
        environment_weights=(production, (1 - production) * 0.8, (1 - production) * 0.2),
        start=start,
        end=end,
        exception=exception,
    )


def _issue_row(project_id: int, issue: _Issue) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "grouping_hash": issue.grouping_hash,
        "grouping_version": CURRENT,
        "title": issue.title,
        "culprit": issue.culprit,
        "type": issue.type,
        "value": issue.value,
        "level": issue.level,
        "status": issue.status,
        "platform": "python",
        "unhandled": issue.unhandled,
        "first_seen": issue.start,
        "last_seen": issue.start,
        "event_count": 0,
        "user_count": 0,
        "workflow_count": 0,
        "run_count": 0,
        "tenant_count": 0,
    }


def _event_counts(rng: random.Random, events_total: int, issues_total: int) -> list[int]:
    """Every issue gets one event, the rest follow a Zipf-like law: the top issue ~10 %, a long tail of ones."""
    cumulative = list(accumulate(1.0 / (rank + 1) ** _ZIPF_EXPONENT for rank in range(issues_total)))
    drawn = Counter(rng.choices(range(issues_total), cum_weights=cumulative, k=events_total - issues_total))
    return [1 + drawn[index] for index in range(issues_total)]


class _Generator:
    """Makes one issue's events and everything derived from them."""

    def __init__(self, rng: random.Random, project_id: int, now: float, window: float, events_total: int):
        self.rng, self.project_id, self.now, self.window = rng, project_id, now, window
        self.workflows = [f"{name}-{verb}" for name in _WORKFLOW_NAMES for verb in _WORKFLOW_VERBS]
        # Enough runs that big issues see thousands of them, few enough that runs repeat (retries, several steps).
        self.runs_per_workflow = max(20, events_total // (len(self.workflows) * 8))
        self.tenants = [f"tenant-{n:03d}" for n in range(_TENANTS)]
        self.tenant_weights = list(accumulate(1.0 / (n + 1) for n in range(_TENANTS)))
        self.user_weights = list(accumulate(1.0 / (n + 1) ** 0.8 for n in range(_USERS)))
        self.compressor = zstandard.ZstdCompressor(level=3)

    def release_at(self, timestamp: float) -> str:
        """Releases follow each other evenly over the window; a few events still come from the one before."""
        age = (self.now - timestamp) / self.window
        number = max(0, _RELEASES - 1 - int(age * _RELEASES))
        if number and self.rng.random() < 0.05:
            number -= 1
        return f"meshhook@1.{number}.0"

    def issue_events(self, issue: _Issue, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rng = self.rng
        stamps = sorted(rng.uniform(issue.start, issue.end) for _ in range(count))
        environments = rng.choices(_ENVIRONMENTS, issue.environment_weights, k=count)
        rows: list[dict[str, Any]] = []
        hourly: Counter[int] = Counter()
        facets: dict[tuple[str, str], list[float]] = {}
        # Per kind and value: events with it and the latest receive time (events come in timestamp order).
        impact: dict[str, dict[str, list[float]]] = {"user": {}, "workflow": {}, "run": {}, "tenant": {}}
        minutes: Counter[int] = Counter()
        releases = []
        for stamp, environment in zip(stamps, environments, strict=True):
            row, tags = self.event(issue, stamp, environment)
            rows.append(row)
            releases.append(row["release"])
            hourly[hour_of(stamp)] += 1
            facet_items = (
                *tags.items(),
                ("level", issue.level),
                ("environment", environment),
                ("release", releases[-1]),
            )
            for item in facet_items:
                if item[0] in IMPACT_FACETS:  # as the digest: counted in issue_impact only
                    continue
                entry = facets.setdefault(item, [0, 0.0])
                entry[0] += 1
                entry[1] = stamp  # events come in timestamp order: the last one seen is the latest
            for kind, value in (
                ("workflow", row["workflow_id"]),
                ("run", row["run_id"]),
                ("tenant", row["tenant"]),
                ("user", row["user_key"]),
            ):
                if value:
                    seen = impact[kind].setdefault(value, [0, 0.0])
                    seen[0] += 1
                    seen[1] = max(seen[1], row["received_at"])
            if row["received_at"] >= self.now - 86_400:  # alert windows reach back a day at most
                minutes[int(row["received_at"] // 60)] += 1
        rows[0]["pinned"] = True  # the issue's first event
        resolved_at = None
        if issue.status == "resolved":
            resolved_at = min(self.now, stamps[-1] + rng.uniform(600, 86_400))
        derived = {
            "hourly": [{"issue_id": issue.id, "hour": hour, "count": n} for hour, n in hourly.items()],
            "tags": [
                {"issue_id": issue.id, "key": key, "value": value, "count": int(n), "last_seen": seen}
                for (key, value), (n, seen) in facets.items()
            ],
            "impact": [
                {"issue_id": issue.id, "kind": k, "value": v, "count": int(n), "last_seen": seen}
                for k, values in impact.items()
                for v, (n, seen) in values.items()
            ],
            "minutes": [{"issue_id": issue.id, "minute": m, "count": n} for m, n in minutes.items()],
            "update": {
                "b_id": issue.id,
                "b_n": count,
                "b_first": stamps[0],
                "b_last": stamps[-1],
                "b_first_release": releases[0],
                "b_last_release": releases[-1],
                "b_resolved_at": resolved_at,
                "b_bytes": sum(len(row["payload"]) for row in rows),
                **{f"b_{kind}": len(values) for kind, values in impact.items()},
            },
        }
        return rows, derived

    def event(self, issue: _Issue, stamp: float, environment: str) -> tuple[dict[str, Any], dict[str, str]]:
        rng = self.rng
        workflow = rng.choice(issue.workflows)
        run_number = rng.randrange(self.runs_per_workflow)
        run_id = f"{workflow}-{run_number:06d}"
        tenant = self.tenants[(run_number * 7919 + len(workflow)) % _TENANTS]  # a run belongs to one tenant
        step_id = rng.choice(_STEPS[issue.component])
        host = f"{issue.component}-{rng.randrange(_HOSTS)}"
        release = self.release_at(stamp)
        event_id = f"{rng.getrandbits(128):032x}"
        received = stamp + rng.random() * 2
        tags = {"component": issue.component, "workflow_id": workflow, "run_id": run_id, "step_id": step_id,
                "tenant": tenant, "server_name": host}  # fmt: skip
        user_id = None
        if issue.component != "orchestrator" or rng.random() < 0.2:  # background work rarely has a user
            user_id = f"u-{rng.choices(range(_USERS), cum_weights=self.user_weights)[0]:05d}"
        data: dict[str, Any] = {
            "event_id": event_id,
            "timestamp": stamp,
            "level": issue.level,
            "platform": "python",
            "environment": environment,
            "release": release,
            "server_name": host,
            "tags": tags,
            "contexts": {
                "workflow": {key: tags[key] for key in ("component", "workflow_id", "run_id", "step_id", "tenant")},
                "runtime": {"name": "CPython", "version": "3.12.3"},
            },
            "exception": {"values": [issue.exception]},
            "sdk": {"name": "sentry.python", "version": "2.75.0"},
            "received": received,
            "grouping": {"hash": issue.grouping_hash, "version": CURRENT},
        }
        if user_id is not None:
            data["user"] = {"id": user_id}
        row = {
            "project_id": self.project_id,
            "issue_id": issue.id,
            "event_id": event_id,
            "timestamp": stamp,
            "received_at": received,
            "level": issue.level,
            "handled": not issue.unhandled,
            "environment": environment,
            "release": release,
            "component": issue.component,
            "workflow_id": workflow,
            "run_id": run_id,
            "step_id": step_id,
            "tenant": tenant,
            "user_key": f"id:{user_id}" if user_id else None,
            "payload": self.compressor.compress(orjson.dumps(data)),
            "pinned": False,
        }
        return row, tags


_UPDATE_ISSUES = (
    update(issues)
    .where(issues.c.id == bindparam("b_id"))
    .values(
        event_count=bindparam("b_n"),
        stored_events=bindparam("b_n"),
        stored_bytes=bindparam("b_bytes"),
        first_seen=bindparam("b_first"),
        last_seen=bindparam("b_last"),
        first_release=bindparam("b_first_release"),
        last_release=bindparam("b_last_release"),
        resolved_at=bindparam("b_resolved_at"),
        user_count=bindparam("b_user"),
        workflow_count=bindparam("b_workflow"),
        run_count=bindparam("b_run"),
        tenant_count=bindparam("b_tenant"),
    )
)


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class _Writer:
    """Buffers rows per table and writes them in chunks, one transaction per chunk."""

    def __init__(self, engine: Engine, chunk: int):
        self.engine, self.chunk = engine, chunk
        tables = (events, issue_hourly, project_hourly, issue_tags, issue_impact, issue_minutes)
        self.buffers: dict[Table, list[dict[str, Any]]] = {table: [] for table in tables}
        self.written: Counter[str] = Counter()

    def add(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self.buffers[table].extend(rows)
        if len(self.buffers[table]) >= self.chunk:
            self.flush(table)

    def flush(self, table: Table) -> None:
        rows, self.buffers[table] = self.buffers[table], []
        for part in _chunks(rows, self.chunk):
            self.execute(insert(table), part)
        self.written[table.name] += len(rows)

    def flush_all(self) -> None:
        for table in list(self.buffers):
            self.flush(table)

    def execute(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        with self.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            connection.execute(statement, rows)


def _create_issues(writer: _Writer, project_id: int, planned: list[_Issue]) -> None:
    for part in _chunks([_issue_row(project_id, issue) for issue in planned], writer.chunk):
        writer.execute(insert(issues), part)
    with writer.engine.connect() as connection:
        ids = dict(
            connection.execute(
                select(issues.c.grouping_hash, issues.c.id).where(issues.c.project_id == project_id)
            ).all()
        )
    for issue in planned:
        issue.id = ids[issue.grouping_hash]
    hashes = [
        {
            "project_id": project_id,
            "hash": i.grouping_hash,
            "issue_id": i.id,
            "version": CURRENT,
            "first_seen": i.start,
        }
        for i in planned
    ]
    for part in _chunks(hashes, writer.chunk):
        writer.execute(insert(grouping_hashes), part)


def seed_project(
    engine: Engine, project_slug: str, options: SeedOptions, progress: Callable[[str], None] = lambda _: None
) -> SeedResult:
    """Add ``options.issues`` issues and ``options.events`` events to the project, spread over the last days."""
    if options.issues < 1 or options.events < options.issues:
        raise SeedError("need at least one issue and at least as many events as issues")
    if not 0 < options.days <= 90:
        raise SeedError("--days must be more than 0 and at most 90")
    with engine.connect() as connection:
        project_id = connection.execute(select(projects.c.id).where(projects.c.slug == project_slug)).scalar()
    if project_id is None:
        raise SeedError(f"no project {project_slug!r}")
    started = time.monotonic()
    rng = random.Random(options.seed)
    now, window = time.time(), options.days * 86_400
    generator = _Generator(rng, project_id, now, window, options.events)
    planned = [_plan_issue(rng, index, generator.workflows, now, window) for index in range(options.issues)]
    writer = _Writer(engine, options.chunk)
    _create_issues(writer, project_id, planned)
    progress(f"issues: {len(planned):,} created ({time.monotonic() - started:.1f} s)")
    updates = []
    by_level: Counter[tuple[int, str]] = Counter()  # events per hour and their own level: project_hourly
    done, report_every = 0, max(options.events // 10, 1)
    for issue, count in zip(planned, _event_counts(rng, options.events, options.issues), strict=True):
        rows, derived = generator.issue_events(issue, count)
        writer.add(events, rows)
        by_level.update((hour_of(row["timestamp"]), row["level"]) for row in rows)
        writer.add(issue_hourly, derived["hourly"])
        writer.add(issue_tags, derived["tags"])
        writer.add(issue_impact, derived["impact"])
        writer.add(issue_minutes, derived["minutes"])
        updates.append(derived["update"])
        if (done + count) // report_every > done // report_every:
            progress(f"events: {done + count:,}/{options.events:,} ({time.monotonic() - started:.1f} s)")
        done += count
    hourly_levels = [{"project_id": project_id, "hour": h, "level": lv, "count": n} for (h, lv), n in by_level.items()]
    writer.add(project_hourly, hourly_levels)
    writer.flush_all()
    for part in _chunks(updates, options.chunk):
        writer.execute(_UPDATE_ISSUES, part)
    written = writer.written
    return SeedResult(
        issues=len(planned),
        events=written["events"],
        hourly=written["issue_hourly"],
        tags=written["issue_tags"],
        impact=written["issue_impact"],
        seconds=time.monotonic() - started,
    )
