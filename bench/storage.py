"""Stackwatch storage cost: bytes of SQLite database per stored event, by part, with and without dictionaries.

Builds ``--events`` realistic events once — Python ``sentry-sdk``-shaped ones (the load generator's: in-app and
library frames with source context and variables, contexts, modules, a trail of breadcrumbs) and Node
``@sentry/node``-shaped ones (made from a captured ``@sentry/node`` 11.12 event: ten frames, most of them
``node:internal`` and ``node_modules``, OS/device/culture contexts), over ``--issues`` issues of two projects,
with MeshHook workflow tags, users, runs and tenants that repeat as they do in a real workload. The same events
are then digested twice, each time into a fresh SQLite data directory, through the real path: sealed envelopes
in the inbox, ``Digester.run_once`` batches, the digest's housekeeping (``Digester.tidy``) between batches.

* ``plain``: dictionaries off (``Digester(dictionaries=False)``): every payload is zstd level 3 alone, as before.
* ``dictionaries``: the default: the housekeeping trains a zstd dictionary per project once it has enough
  payloads, and retrains as events keep coming.

For each it reports the database file's size per event after a ``VACUUM`` (so free pages do not count), and
the parts (from SQLite's ``dbstat``): the ``events`` table (payloads and columns), each of its indexes, the facet
and impact tables (``issue_tags``, ``issue_impact``, ``issue_hourly``), the issues, the dictionaries, the rest.

    .venv/bin/python -m bench.storage --events 100000
    .venv/bin/python -m bench.storage --events 5000 --json storage.json
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import Target, _breadcrumb, _envelope, _event, _issue
from stackwatch.server.config import load_settings
from stackwatch.server.digest.worker import Digester
from stackwatch.server.services import open_services
from stackwatch.server.storage import accounts

__all__ = ["build_events", "main", "measure"]

ROOT = Path(__file__).resolve().parent.parent
NODE_TEMPLATE = ROOT / "tests" / "fixtures" / "sdk-envelopes" / "node-sentry-11.12.0" / "0002.body"
BAR_BYTES_PER_EVENT = 800
_CHUNK = 2000  # envelopes put into the inbox at a time, then digested
_NODE_SHARE = 0.3  # of the events: MeshHook's SvelteKit API; the rest are the Python workers
_NODE_ERRORS = (
    ("TypeError", "Cannot read properties of undefined (reading '{word}') for workflow wf_{n}"),
    ("RangeError", "Invalid time value for step {n}"),
    ("SyntaxError", "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON (run {n})"),
    ("Error", "Request failed with status code 502 for tenant-{n}"),
    ("FetchError", "request to https://crm.example.com/v2/{n} failed, reason: socket hang up"),
)
_NODE_WORDS = ("steps", "payload", "headers", "tenant", "body", "items", "workflowId", "retries")
_STEPS = ("fetch-order", "call-crm", "transform", "notify", "persist", "branch", "validate")


@dataclass(frozen=True, slots=True)
class Workload:
    """Who the events come from: these repeat across events, as users, runs and tenants do."""

    workflows: list[str]
    runs: list[str]
    tenants: list[str]
    users: int


def _node_issue(template: dict[str, Any], k: int) -> dict[str, Any]:
    """Node issue ``k``: the captured event's frames with in-app functions and source lines of its own."""
    exception: dict[str, Any] = copy.deepcopy(template["exception"]["values"][0])
    kind, value = _NODE_ERRORS[k % len(_NODE_ERRORS)]
    exception["type"] = kind
    exception["value"] = value
    for index, frame in enumerate(exception["stacktrace"]["frames"]):
        if frame.get("in_app"):
            frame["function"] = f"handle{_NODE_WORDS[k % len(_NODE_WORDS)].title()}{k}_{index}"
            frame["lineno"] = 10 + (k * 7 + index) % 400
            frame["context_line"] = f"  const result = await step{k}.run(ctx.{_NODE_WORDS[index % 8]});"
    return exception


def _node_event(
    rng: random.Random, template: dict[str, Any], exception: dict[str, Any], stamp: float, load: Workload
) -> dict[str, Any]:
    event = copy.deepcopy(template)
    n = rng.randrange(1_000_000)
    exc = copy.deepcopy(exception)
    exc["value"] = exc["value"].format(n=n, word=rng.choice(_NODE_WORDS))
    event["exception"] = {"values": [exc]}
    event["event_id"] = uuid.UUID(int=rng.getrandbits(128)).hex
    event["timestamp"] = stamp
    workflow, run, tenant = _workflow(rng, load)
    step = rng.choice(_STEPS)
    event["tags"] = {"component": "api", "workflow_id": workflow, "run_id": run, "step_id": step, "tenant": tenant}
    event["contexts"]["workflow"] = {"workflow_id": workflow, "run_id": run, "step_id": step, "tenant": tenant}
    event["contexts"]["trace"] = {
        "trace_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "span_id": f"{rng.getrandbits(64):016x}",
    }
    user = rng.randrange(load.users)
    event["user"] = {"id": f"user-{user}", "email": f"user{user}@example.com"}
    event["breadcrumbs"] = [
        {
            "timestamp": stamp - rng.random() * 5,
            "category": "http",
            "type": "http",
            "data": {
                "method": "GET",
                "url": f"https://api.example.com/v1/{rng.choice(_NODE_WORDS)}/{n % 97}",
                "status_code": rng.choice((200, 200, 200, 404, 502)),
            },
        }
        for _ in range(rng.randrange(0, 8))
    ]
    return event


def _workflow(rng: random.Random, load: Workload) -> tuple[str, str, str]:
    run_index = rng.randrange(len(load.runs))
    run = load.runs[run_index]
    return load.workflows[run_index % len(load.workflows)], run, load.tenants[run_index % len(load.tenants)]


def _python_event(rng: random.Random, shape: Any, stamp: float, load: Workload) -> dict[str, Any]:
    event = _event(rng, shape, stamp, uuid.UUID(int=rng.getrandbits(128)).hex, load.users)
    workflow, run, tenant = _workflow(rng, load)
    step = rng.choice(_STEPS)
    event["tags"].update(workflow_id=workflow, run_id=run, tenant=tenant, step_id=step)
    event["contexts"]["workflow"].update(workflow_id=workflow, run_id=run, step_id=step, tenant=tenant)
    crumbs = event["breadcrumbs"]["values"]
    for _ in range(rng.randrange(0, 12)):  # a worker's trail of steps: up to a dozen breadcrumbs
        crumbs.append(_breadcrumb(rng, stamp))
    return event


def build_events(count: int, *, issues: int, users: int, seed: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """``count`` (project number, event) pairs: project 0 gets the Python events, project 1 the Node ones.

    Made as they are consumed (100,000 events held at once took 2 GB); the same seed makes the same events.
    """
    rng = random.Random(seed)
    template_item = NODE_TEMPLATE.read_bytes().split(b"\n")[2]
    template = orjson.loads(template_item)
    node_issues = max(1, int(issues * _NODE_SHARE))
    python_shapes = [_issue(k) for k in range(max(1, issues - node_issues))]
    node_shapes = [_node_issue(template, k) for k in range(node_issues)]
    runs = max(50, count // 6)  # a run fails a few times: retries, several steps
    load = Workload(
        workflows=[f"wf_{name}" for name in ("orders", "signup", "invoices", "crm-sync", "billing", "notify")]
        + [f"wf_{n}" for n in range(34)],
        runs=[f"run_{n:08d}" for n in rng.sample(range(10**8), runs)],
        tenants=[f"tenant-{n:03d}" for n in range(25)],
        users=users,
    )
    # Issues follow a long tail: a few frequent ones, many rare (weights 1/rank).
    python_weights = [1.0 / (rank + 1) for rank in range(len(python_shapes))]
    node_weights = [1.0 / (rank + 1) for rank in range(len(node_shapes))]
    stamp = time.time() - count * 0.5
    for index in range(count):
        at = stamp + index * 0.5
        if rng.random() < _NODE_SHARE:
            exception = rng.choices(node_shapes, node_weights)[0]
            yield 1, _node_event(rng, template, exception, at, load)
        else:
            shape = rng.choices(python_shapes, python_weights)[0]
            yield 0, _python_event(rng, shape, at, load)


def _bodies(
    events: Iterator[tuple[int, dict[str, Any]]], projects: list[accounts.ProjectInfo], sizes: list[int]
) -> Iterator[tuple[int, bytes]]:
    for project, event in events:
        if "trace" not in event["contexts"]:
            event["contexts"]["trace"] = {"trace_id": uuid.uuid4().hex}
        event.setdefault("environment", "production")
        event.setdefault("release", "meshhook@1.0.0")
        info = projects[project]
        sizes.append(len(orjson.dumps(event)))
        yield info.id, _envelope(Target(info.public_key, "127.0.0.1", 80, info.id), event, time.time())


async def _put(inbox: Any, rows: list[tuple[int, bytes]]) -> None:
    now = time.time()
    await asyncio.gather(*(inbox.put(project_id, now, "198.51.100.7", body) for project_id, body in rows))


def _digest(digester: Digester) -> None:
    while digester.run_once() is not None:
        digester.tidy(idle=False)
    digester.tidy(idle=True)


def _parts(database: Path) -> dict[str, int]:
    """Bytes per table and index of the main database, from ``dbstat``, grouped into the parts reported."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        indexes = dict(connection.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall())
    parts: dict[str, int] = {}
    for name, size in rows:
        table = indexes.get(name, name)
        if table == "events":
            part = "events: table (payloads, columns)" if name == "events" else f"events: index {name}"
        elif table in ("issue_tags", "issue_impact", "issue_hourly", "project_hourly"):
            part = f"facets/impact: {table}" + ("" if name == table else " (index)")
        elif table in ("issues", "compression_dicts"):
            part = table
        else:
            part = "other"
        parts[part] = parts.get(part, 0) + int(size)
    return dict(sorted(parts.items()))


def measure(events: Iterator[tuple[int, dict[str, Any]]], *, dictionaries: bool, directory: Path) -> dict[str, Any]:
    """Digest ``events`` into a fresh data directory; the database's bytes per event, whole and by part."""
    env = {"STACKWATCH_SECRET_KEY": "bench-storage-secret"}
    settings = load_settings({"data_dir": str(directory)}, env)
    services = open_services(settings)
    try:
        with services.engine.begin() as connection:
            projects = [accounts.create_project(connection, name) for name in ("workers", "api")]
        digester = Digester(
            services.engine,
            services.inbox,
            batch_size=settings.digest_batch_size,
            identity_key=settings.secret_key.encode(),
            dictionaries=dictionaries,
        )
        services.inbox.start_writer()
        started = time.monotonic()
        sizes: list[int] = []
        bodies = _bodies(events, projects, sizes)
        while chunk := list(itertools.islice(bodies, _CHUNK)):
            asyncio.run(_put(services.inbox, chunk))
            _digest(digester)
        elapsed = time.monotonic() - started
        services.inbox.stop_writer()
        with services.engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT COUNT(*) FROM events").scalar_one()
            dicts = connection.exec_driver_sql("SELECT COUNT(*) FROM compression_dicts").scalar_one()
            payloads = connection.exec_driver_sql("SELECT SUM(LENGTH(payload)) FROM events").scalar_one()
    finally:
        services.close()
    database = directory / "stackwatch.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("VACUUM")
    size = database.stat().st_size
    count = max(int(stored), 1)
    return {
        "dictionaries": dictionaries,
        "events": int(stored),
        "dictionaries_trained": int(dicts),
        "seconds": round(elapsed, 1),
        "file_bytes": size,
        "bytes_per_event": round(size / count, 1),
        "event_json_bytes": round(sum(sizes) / max(len(sizes), 1), 1),
        "payload_bytes_per_event": round(int(payloads or 0) / count, 1),
        "parts_bytes_per_event": {name: round(n / count, 1) for name, n in _parts(database).items()},
    }


def _summary(report: dict[str, Any]) -> str:
    lines = []
    for run in report["runs"]:
        name = "dictionaries" if run["dictionaries"] else "plain"
        lines.append(
            f"{name:>12}: {run['bytes_per_event']:7.1f} B/event (file {run['file_bytes'] / 1e6:.1f} MB, "
            f"payload {run['payload_bytes_per_event']:.1f} B, {run['dictionaries_trained']} dicts, {run['seconds']} s)"
        )
        for part, value in run["parts_bytes_per_event"].items():
            lines.append(f"{'':>14}{part:<48} {value:8.1f}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.storage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000, help="events to digest per run (default 20000)")
    parser.add_argument("--issues", type=int, default=300, help="distinct issues over both projects (300)")
    parser.add_argument("--users", type=int, default=2000, help="distinct users (2000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the event contents (1)")
    parser.add_argument("--only", choices=("plain", "dictionaries"), help="one of the two runs only")
    parser.add_argument("--json", type=Path, help="also write the JSON report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.events <= 0 or args.issues <= 1 or args.users <= 0:
        raise SystemExit("--events and --users must be positive, --issues at least 2")
    modes = [mode == "dictionaries" for mode in ("plain", "dictionaries") if args.only in (None, mode)]
    runs = []
    for dictionaries in modes:
        with tempfile.TemporaryDirectory(prefix="stackwatch-bench-storage-") as directory:
            events = build_events(args.events, issues=args.issues, users=args.users, seed=args.seed)
            runs.append(measure(events, dictionaries=dictionaries, directory=Path(directory)))
    raw = runs[0]["event_json_bytes"]
    report = {"events": args.events, "issues": args.issues, "event_json_bytes": round(raw, 1), "runs": runs}
    report["bar_bytes_per_event"] = BAR_BYTES_PER_EVENT
    report["bar_met"] = all(run["bytes_per_event"] <= BAR_BYTES_PER_EVENT for run in runs if run["dictionaries"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"stackwatch bench storage events={args.events} event_json={raw:.0f} B", file=sys.stderr)
    print(_summary(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
