"""Disk over time under a constant load, with retention's count limit on and off, in one run.

Realistic events (bench/storage.py's: Python and Node SDK shapes, a long tail of issues, MeshHook tags) are
digested into a fresh SQLite data directory through the real path, in steps of ``--step`` events. After each
step the digest's housekeeping runs as the worker runs it (retention pass, free pages given back), and the
database file is measured (main file after a WAL checkpoint, plus the inbox file). With ``--cap`` the project
keeps at most that many events; the run sends ``--rounds`` times as many. The other arm is the same load
without a count limit.

    .venv/bin/python -m bench.retention_disk --cap 10000 --rounds 4
    .venv/bin/python -m bench.retention_disk --cap 2000 --rounds 4 --step 500 --json disk.json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.storage import _bodies, _put, build_events
from stackwatch.server.config import load_settings
from stackwatch.server.services import open_services
from stackwatch.server.storage import accounts
from stackwatch.server.storage.db import inbox_path


def _runs_in_time(events: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """bench/storage.py draws each event's run from one pool for the whole run; here a run is over after a few
    events (retries, steps), as MeshHook's are, so that a cap can keep the runs' impact rows bounded too."""
    for index, (project, event) in enumerate(events):
        run = f"run_{index // 6:08d}"
        for holder in (event.get("tags"), event.get("contexts", {}).get("workflow")):
            if isinstance(holder, dict) and "run_id" in holder:
                holder["run_id"] = run
        yield project, event


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def run(*, cap: int, total: int, step: int, directory: Path) -> list[dict[str, Any]]:
    """Digest ``total`` events in steps; after each, the stored events and the files' size."""
    env = {"STACKWATCH_SECRET_KEY": "bench-retention-secret", "STACKWATCH_RETENTION_MAX_EVENTS": str(cap)}
    settings = load_settings({"data_dir": str(directory)}, env)
    services = open_services(settings)
    database = directory / "stackwatch.sqlite3"
    inbox = inbox_path(settings.database_url)
    rows: list[dict[str, Any]] = []
    try:
        with services.engine.begin() as connection:
            project = accounts.create_project(connection, "meshhook")
        projects = [project, project]  # the Python and the Node events in one project, under one cap
        services.inbox.start_writer()
        digester, retention = services.digester, services.digester.retention
        assert retention is not None
        sent = 0
        bodies = _bodies(_runs_in_time(build_events(total, issues=300, users=2000, seed=5)), projects, [])
        while chunk := list(itertools.islice(bodies, step)):
            asyncio.run(_put(services.inbox, chunk))
            sent += len(chunk)
            while digester.run_once() is not None:
                digester.tidy(idle=False)
            retention.run_pass()
            digester.tidy(idle=True)
            with services.engine.connect() as connection:
                stored = int(connection.exec_driver_sql("SELECT COUNT(*) FROM events").scalar_one())
            with services.engine.connect() as connection:  # outside any transaction
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
                free = connection.exec_driver_sql("PRAGMA freelist_count").scalar_one()
                page_size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
            rows.append(
                {
                    "sent": sent,
                    "stored": stored,
                    "bytes": _file_bytes(database),
                    "used_bytes": (pages - free) * page_size,
                    "inbox_bytes": _file_bytes(inbox) if inbox else 0,
                }
            )
        services.inbox.stop_writer()
    finally:
        services.close()
    return rows


def _table(capped: list[dict[str, Any]], unlimited: list[dict[str, Any]], cap: int) -> str:
    mb = 2**20
    lines = [
        f"| events sent | stored (cap {cap:,}) | file MB | in use MB | inbox MB | stored (no cap) | file MB (no cap) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a, b in zip(capped, unlimited, strict=True):
        lines.append(
            f"| {a['sent']:,} | {a['stored']:,} | {a['bytes'] / mb:.1f} | {a['used_bytes'] / mb:.1f} "
            f"| {a['inbox_bytes'] / mb:.1f} | {b['stored']:,} | {b['bytes'] / mb:.1f} |"
        )
    first = next((row for row in capped if row["stored"] >= cap), capped[-1])
    last = capped[-1]
    lines.append("")
    lines.append(
        f"capped, at the end against when the cap was first reached: file {last['bytes'] / first['bytes']:.2f}x, "
        f"in use {last['used_bytes'] / first['used_bytes']:.2f}x; "
        f"no cap at the end: {unlimited[-1]['bytes'] / last['bytes']:.2f}x the capped file"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=int, default=10_000, help="events the project keeps at most")
    parser.add_argument("--rounds", type=int, default=4, help="events sent, in multiples of the cap")
    parser.add_argument("--step", type=int, default=1000, help="events between two measurements")
    parser.add_argument("--json", type=Path, help="write the measurements here too")
    args = parser.parse_args(argv)
    total = args.cap * args.rounds
    with tempfile.TemporaryDirectory() as capped_dir, tempfile.TemporaryDirectory() as open_dir:
        capped = run(cap=args.cap, total=total, step=args.step, directory=Path(capped_dir))
        unlimited = run(cap=0, total=total, step=args.step, directory=Path(open_dir))
    print(_table(capped, unlimited, args.cap))
    if args.json:
        args.json.write_text(json.dumps({"cap": args.cap, "capped": capped, "unlimited": unlimited}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
