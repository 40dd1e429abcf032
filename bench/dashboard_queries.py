"""Server time of the REST API reads the dashboard makes, on a database seeded with ``stackwatch seed``.

It seeds a fresh SQLite database in a temporary directory (or reuses a seeded one with ``--data-dir … --reuse``),
then sends each case ``--requests`` times in process, through starlette's ``TestClient`` against the real app
(``create_app(…, run_worker=False)``): the issue list for every sort and every filter, page 1 and page 2 through
the cursor, an issue's detail with its 24-hour and 30-day series, its events (two pages), one event. It reports
p50/p95/max per case as a table and one JSON line, and checks the bar of DESIGN.md §4 (p95 ≤ 100 ms per case).

For a case over the bar it records the SQL the request ran and, on SQLite, each statement's ``EXPLAIN QUERY
PLAN``: what to look at to fix it. Times include the in-process client (the ``healthz`` case shows that floor).

    python -m bench.dashboard_queries --events 1000000 --issues 10000
    python -m bench.dashboard_queries --data-dir /tmp/seeded --reuse --json dashboard.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, func, select, text
from starlette.testclient import TestClient

from stackwatch.server.app import create_app
from stackwatch.server.config import load_settings
from stackwatch.server.services import open_services
from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import issues, projects
from stackwatch.server.storage.seed import SeedOptions, seed_project

__all__ = ["main", "run", "seeded_database_parser"]

BAR_P95_MS = 100.0  # DESIGN.md §4: every dashboard read
PROJECT = "bench"
SORTS = ("last_seen", "first_seen", "events", "users", "runs")


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    path: str
    params: dict[str, Any]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class Recorder:
    """The SQL statements the engine runs while ``on`` is set."""

    def __init__(self, engine: Engine):
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if self.on:
            self.statements.append((statement, parameters))


def _plans(engine: Engine, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    found = []
    with engine.connect() as connection:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT") or "api_tokens" in statement:
                continue
            entry: dict[str, Any] = {"sql": " ".join(statement.split()), "parameters": list(parameters or ())}
            if engine.dialect.name == "sqlite":
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
                entry["plan"] = [row[-1] for row in rows]
            found.append(entry)
    return found


def _prepare(engine: Engine, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Seed unless reusing a seeded project; an API token; the database's size."""
    with engine.begin() as connection:
        project_id = connection.execute(select(projects.c.id).where(projects.c.slug == PROJECT)).scalar()
        if project_id is None:
            project_id = accounts.create_project(connection, "Bench").id
        existing = connection.execute(select(func.count()).where(issues.c.project_id == project_id)).scalar() or 0
    seeded: dict[str, Any] = {"reused": bool(existing and args.reuse)}
    if not seeded["reused"]:
        if existing:
            raise SystemExit(f"project {PROJECT!r} already has issues: pass --reuse, or a fresh --data-dir")
        options = SeedOptions(args.events, args.issues, days=args.days, seed=args.seed)
        result = seed_project(engine, PROJECT, options, lambda line: print(line, file=sys.stderr))
        seeded.update(seconds=round(result.seconds, 1), events_per_second=round(result.events / result.seconds))
    with engine.begin() as connection:
        token = accounts.create_token(connection, "bench")
        seeded.update(_sizes(connection))
    return token, seeded


def _sizes(connection: Connection) -> dict[str, int]:
    return {
        f"{table}_rows": int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
        for table in ("issues", "events", "issue_hourly", "issue_tags", "issue_impact")
    }


def _cases(client: TestClient, headers: dict[str, str]) -> list[Case]:
    """Every read the dashboard makes, with values taken from the data (the biggest issue, its workflow …)."""

    def get(path: str, **params: Any) -> Any:
        response = client.get(f"/api/v1{path}", params=params, headers=headers)
        response.raise_for_status()
        return response.json()

    top = get(f"/projects/{PROJECT}/issues", sort="events", limit=1)["data"][0]
    detail = get(f"/issues/{top['id']}")
    value = {facet["key"]: facet["values"][0]["value"] for facet in detail["tags"]}
    first_event = get(f"/issues/{top['id']}/events", limit=1)["data"][0]
    listing = f"/projects/{PROJECT}/issues"
    lists = [(f"sort={sort}", {"sort": sort}) for sort in SORTS] + [
        ("status=resolved", {"status": "resolved"}),
        ("level=warning", {"level": "warning"}),
        ("environment=staging", {"environment": "staging"}),
        (f"release={value['release']}", {"release": value["release"]}),
        ("component=orchestrator", {"component": "orchestrator"}),
        (f"workflow_id={value['workflow_id']}", {"workflow_id": value["workflow_id"]}),
        ("query=timeout", {"query": "timeout"}),
        ("component+status", {"component": "http-executor", "status": "unresolved"}),
        # Few or no matches: the list reads the whole project's issues to find them (the worst case).
        ("level=fatal+environment=development", {"level": "fatal", "environment": "development"}),
        ("query=no-such-text", {"query": "no-such-text"}),
    ]
    cases = [Case("healthz (client floor)", "/healthz", {})]
    for name, params in lists:
        cases.append(Case(f"issues {name}", f"/api/v1{listing}", params))
        cursor = get(listing, **params)["next_cursor"]
        if cursor:
            cases.append(Case(f"issues {name} page 2", f"/api/v1{listing}", {**params, "cursor": cursor}))
    events_path = f"/issues/{top['id']}/events"
    cases += [
        Case("issue detail 24 h", f"/api/v1/issues/{top['id']}", {"hours": 24}),
        Case("issue detail 30 d", f"/api/v1/issues/{top['id']}", {"hours": 720}),
        Case("issue events", f"/api/v1{events_path}", {}),
        Case("issue events page 2", f"/api/v1{events_path}", {"cursor": get(events_path)["next_cursor"]}),
        Case("event", f"/api/v1/events/{first_event['event_id']}", {}),
    ]
    return cases


def _measure(client: TestClient, headers: dict[str, str], case: Case, requests: int) -> list[float]:
    client.get(case.path, params=case.params, headers=headers).raise_for_status()  # warm the caches once
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(case.path, params=case.params, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="stackwatch-dashboard-"))
    flags = {"data_dir": str(data_dir), **({"database_url": args.database_url} if args.database_url else {})}
    settings = load_settings(flags, {"STACKWATCH_SECRET_KEY": "bench-secret-key"})
    services = open_services(settings)
    try:
        token, seeded = _prepare(services.engine, args)
        headers = {"Authorization": f"Bearer {token}"}
        recorder = Recorder(services.engine)
        results = []
        with TestClient(create_app(settings, services, run_worker=False)) as client:
            for case in _cases(client, headers):
                times = _measure(client, headers, case, args.requests)
                result: dict[str, Any] = {
                    "case": case.name,
                    "p50_ms": round(statistics.median(times), 2),
                    "p95_ms": round(_percentile(times, 0.95), 2),
                    "max_ms": round(max(times), 2),
                }
                result["ok"] = result["p95_ms"] <= BAR_P95_MS
                if not result["ok"]:
                    recorder.statements, recorder.on = [], True
                    client.get(case.path, params=case.params, headers=headers)
                    recorder.on = False
                    result["queries"] = _plans(services.engine, recorder.statements)
                results.append(result)
                print(f"{case.name:<48} p50 {result['p50_ms']:>8} p95 {result['p95_ms']:>8}", file=sys.stderr)
    finally:
        services.close()
    return {
        "benchmark": "dashboard_queries",
        "database": settings.database_url.split("@")[-1],
        "seed": seeded,
        "requests_per_case": args.requests,
        "bar_p95_ms": BAR_P95_MS,
        "cases": results,
        "missed": [r["case"] for r in results if not r["ok"]],
    }


def _table(report: dict[str, Any]) -> str:
    lines = [f"{'case':<48} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  bar", "-" * 80]
    for r in report["cases"]:
        mark = "ok" if r["ok"] else "MISS"
        lines.append(f"{r['case']:<48} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['max_ms']:>8.2f}  {mark}")
    return "\n".join(lines)


def seeded_database_parser(doc: str | None, *, requests: int, unit: str) -> argparse.ArgumentParser:
    """The options the dashboard benchmarks share: the seeded database, and how many requests to time."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=requests, help=f"timed requests per {unit}")
    parser.add_argument("--data-dir", help="where the database is (default: a new temporary directory)")
    parser.add_argument("--database-url", help="another database (default: SQLite in --data-dir)")
    parser.add_argument("--reuse", action="store_true", help="use the seeded project found instead of seeding")
    parser.add_argument("--json", help="also write the full report (with query plans) to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = seeded_database_parser(__doc__, requests=30, unit="case")
    args = parser.parse_args(argv)
    report = run(args)
    print(_table(report))
    for r in report["cases"]:
        for query in r.get("queries", []):
            print(f"\n{r['case']}: {query['sql']}\n  plan: {' | '.join(query.get('plan', []))}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    summary = {key: report[key] for key in ("benchmark", "seed", "requests_per_case", "bar_p95_ms", "missed")}
    summary["cases"] = [{k: v for k, v in r.items() if k != "queries"} for r in report["cases"]]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
