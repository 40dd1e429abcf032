"""Does a large retention prune slow ingest down? Ingest latency without a prune, then while one runs.

Starts ``stackwatch serve`` (SQLite, a fresh data directory, ``STACKWATCH_RETENTION_INTERVAL=1``), fills its
project with ``--stored`` events (``stackwatch seed``: rows written as the digest would have left them), then sends
envelopes shaped like the Python SDK's open-loop at ``--rate`` per second for ``--seconds``, twice:

1. **baseline**: nothing to prune (the project is far below the server's count limit);
2. **prune**: right after ``stackwatch project update --max-events`` lowered the project's limit far below what is
   stored, so the worker's next pass (within a second) deletes most events, in its small transactions between
   digest batches.

Each request's latency counts from when it was due, so queueing behind a slow answer is not hidden. A sampler
reads the stored-events counter every 100 ms (a read-only connection: it takes no lock) to tell when the prune ran;
the prune phase's figures are for the requests due while it did. Prints both and their ratio; the bar is p99
during the prune at most twice the baseline's.

    .venv/bin/python -m bench.prune_ingest
    .venv/bin/python -m bench.prune_ingest --stored 100000 --rate 300 --seconds 20 --json prune.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.loadgen import (
    Connection,
    OwnServer,
    Tally,
    Target,
    _free_port,
    _machine_busy_seconds,
    _own_cpu_seconds,
    _percentile,
    _proc_cpu_seconds,
    _stackwatch_command,
    _wait_ready,
    build_requests,
    fixed_rate,
)

__all__ = ["Phase", "main", "measure_phase", "run"]

BAR_RATIO = 2.0  # p99 during a prune at most this many times the baseline's
PROJECT = "default"  # the project ``stackwatch serve`` creates on its first start


@dataclass(slots=True)
class Phase:
    """One phase's requests: when each was due (seconds from the phase's start), its latency and status."""

    due: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    errors: int = 0
    late: int = 0  # left more than 1 ms after they were due: the sending side could not keep up
    started: float = 0.0  # time.monotonic() at the phase's start

    def summary(self, within: tuple[float, float] | None = None) -> dict[str, Any]:
        """p50/p99/max in ms of the requests due within ``within`` (monotonic times; all when ``None``)."""
        chosen = [
            (lat, st)
            for d, lat, st in zip(self.due, self.latency, self.status, strict=True)
            if within is None or within[0] <= self.started + d <= within[1]
        ]
        ordered = sorted(lat for lat, _ in chosen)

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 2)

        return {
            "requests": len(chosen),
            "accepted": sum(1 for _, st in chosen if st == 200),
            "other_statuses": sum(1 for _, st in chosen if st != 200),
            "p50_ms": ms(_percentile(ordered, 0.50)),
            "p99_ms": ms(_percentile(ordered, 0.99)),
            "max_ms": ms(ordered[-1] if ordered else None),
        }


async def measure_phase(target: Target, raw: list[bytes], rate: float, connections: int) -> Phase:
    """Send ``raw`` open-loop at ``rate`` per second over ``connections`` keep-alive connections (the load
    generator's sender), and keep when each request was due."""
    tally = Tally()
    started, clock = time.monotonic(), time.perf_counter()
    await fixed_rate(target, raw, tally, rate=rate, connections=connections, max_seconds=len(raw) / rate + 60)
    phase = Phase(errors=sum(tally.errors.values()), late=tally.late, started=started)
    for due, latency, status in sorted(tally.answers):
        phase.due.append(due - clock)
        phase.latency.append(latency)
        phase.status.append(status)
    return phase


class StoredSampler:
    """The project's stored events every ``every`` seconds, from a read-only connection (WAL: no lock taken)."""

    def __init__(self, database: Path, every: float = 0.1):
        self.samples: list[tuple[float, int]] = []
        self._database = database
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        connection = sqlite3.connect(f"file:{self._database}?mode=ro", uri=True, timeout=5)
        query = (
            "SELECT coalesce(sum(i.stored_events), 0) FROM issues i JOIN projects p ON p.id = i.project_id "
            "WHERE p.slug = ?"
        )
        try:
            while not self._stop.is_set():
                with contextlib.suppress(sqlite3.OperationalError):  # a sample skipped, not an error
                    self.samples.append((time.monotonic(), int(connection.execute(query, (PROJECT,)).fetchone()[0])))
                self._stop.wait(self._every)
        finally:
            connection.close()

    def __enter__(self) -> StoredSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def now(self) -> int:
        return self.samples[-1][1] if self.samples else -1

    def prune_window(self, since: float) -> tuple[float, float] | None:
        """From the first sample after ``since`` below the count before it, to the last sample that fell."""
        before = [n for t, n in self.samples if t <= since]
        level = before[-1] if before else None
        first = last = None
        for t, n in self.samples:
            if t <= since or level is None:
                continue
            if n < level:
                first = first if first is not None else t
                last = t
            level = n
        return None if first is None or last is None else (first, last)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


class CpuMeter:
    """CPU used during a phase, in cores: the server's process, its digest child, this generator, and the rest of
    the machine. On a shared machine ``others`` says whether a phase's latency measured Stackwatch or neighbours."""

    def __init__(self, server_pid: int):
        self._pid = server_pid

    def _now(self) -> tuple[float, float, float, float, float]:
        children = sum(_proc_cpu_seconds(child) or 0.0 for child in _children(self._pid))
        return (
            time.monotonic(),
            _proc_cpu_seconds(self._pid) or 0.0,
            children,
            _own_cpu_seconds(),
            _machine_busy_seconds() or 0.0,
        )

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        wall, ingest, digest, own, machine = (b - a for a, b in zip(self._start, end, strict=True))
        self.cores = {
            "server": round(ingest / wall, 2),
            "digest_process": round(digest / wall, 2),
            "generator": round(own / wall, 2),
            "others": round(max(0.0, machine - ingest - digest - own) / wall, 2),
        }


def _cli(data_dir: Path, env: dict[str, str], *args: str) -> str:
    command = [*_stackwatch_command(), *args, "--data-dir", str(data_dir)]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout


def _wait_drained(target: Target, timeout: float) -> None:
    async def backlog() -> int:
        connection = Connection(target.host, target.port)
        try:
            status, body = await connection.get(target, "/readyz")
            return int(json.loads(body)["inbox_backlog"]) if status == 200 else -1
        finally:
            await connection.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run(backlog()) == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the inbox did not drain within {timeout:.0f} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="stackwatch-prune-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKWATCH_")}
    env.update(STACKWATCH_LOG_LEVEL="info", STACKWATCH_RETENTION_INTERVAL="1")
    server = OwnServer(workdir / "data", _free_port(), env)
    try:
        dsn = server.start()
        target = Target.from_dsn(dsn)
        asyncio.run(_wait_ready(target, 60))
        seeded = time.monotonic()
        _cli(server.data_dir, env, "seed", "--events", str(args.stored), "--issues", str(args.issues))
        seed_seconds = time.monotonic() - seeded
        count = int(args.rate * args.seconds)
        requests = build_requests(
            target, 2 * count, issues=50, users=1000, event_bytes=args.event_bytes, seed=args.seed
        ).raw
        with StoredSampler(server.database) as sampler:
            time.sleep(1.5)  # a retention pass or two over the seeded project: nothing to prune
            stored_before = sampler.now()
            with CpuMeter(server.pid) as baseline_cpu:
                baseline = asyncio.run(measure_phase(target, requests[:count], args.rate, args.connections))
            _wait_drained(target, 120)
            stored_baseline = sampler.now()
            limit = max(1, stored_baseline // 20)
            lowered = time.monotonic()
            _cli(server.data_dir, env, "project", "update", PROJECT, "--max-events", str(limit))
            with CpuMeter(server.pid) as prune_cpu:
                pruning = asyncio.run(measure_phase(target, requests[count:], args.rate, args.connections))
            _wait_drained(target, 120)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:  # the prune's end, if it outlasted the phase
                time.sleep(1.0)
                window = sampler.prune_window(lowered)
                if window is not None and sampler.samples[-1][0] - window[1] > 2.0:
                    break
            stored_after = sampler.now()
        window = sampler.prune_window(lowered)
        if args.trace:  # every request, and the stored count over time: to see where the slow answers fall
            trace = {
                name: [
                    [round(phase.started + d - lowered, 4), round(lat * 1000, 2), st]
                    for d, lat, st in zip(phase.due, phase.latency, phase.status, strict=True)
                ]
                for name, phase in (("baseline", baseline), ("prune", pruning))
            }
            trace["stored"] = [[round(t - lowered, 3), n] for t, n in sampler.samples]
            args.trace.write_text(json.dumps(trace), encoding="utf-8")
        base = baseline.summary()
        during = pruning.summary(window) if window else {"requests": 0}
        ratio = round(during["p99_ms"] / base["p99_ms"], 2) if during.get("p99_ms") and base.get("p99_ms") else None
        phase_end = pruning.started + args.seconds
        overlap = 0.0 if window is None else max(0.0, min(window[1], phase_end) - max(window[0], pruning.started))
        return {
            "benchmark": "stackwatch-prune-ingest",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "config": {
                "stored": args.stored,
                "issues": args.issues,
                "rate": args.rate,
                "seconds": args.seconds,
                "connections": args.connections,
                "event_bytes": args.event_bytes,
                "seed_seconds": round(seed_seconds, 1),
            },
            "stored_events": {
                "before": stored_before,
                "after_baseline": stored_baseline,
                "max_events_set": limit,
                "after_prune": stored_after,
            },
            "prune": {
                "seconds": None if window is None else round(window[1] - window[0], 1),
                "starts_after_update_s": None if window is None else round(window[0] - lowered, 1),
                "overlap_with_phase_s": round(overlap, 1),
            },
            "baseline": {**base, "late": baseline.late, "errors": baseline.errors, "cores": baseline_cpu.cores},
            "during_prune": {**during, "late": pruning.late, "errors": pruning.errors, "cores": prune_cpu.cores},
            "whole_prune_phase": pruning.summary(),
            "p99_ratio": ratio,
            "bar": {"p99_ratio_max": BAR_RATIO, "met": ratio is not None and ratio <= BAR_RATIO},
        }
    finally:
        status = server.stop()
        if status not in (0, None):
            print(f"stackwatch serve exited with {status}; its log:\n{server.log()[-4000:]}", file=sys.stderr)
        if args.keep_data:
            print(f"data kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.prune_ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=50_000, help="events seeded before measuring (50000)")
    parser.add_argument("--issues", type=int, default=200, help="issues the seeded events spread over (200)")
    parser.add_argument("--rate", type=float, default=300.0, help="envelopes per second in each phase (300)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase (20)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (16)")
    parser.add_argument("--event-bytes", type=int, default=4096, help="size of each event's JSON (4096)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the event contents (1)")
    parser.add_argument("--json", type=Path, help="also write the JSON report here")
    parser.add_argument("--trace", type=Path, help="write every request's time, latency and status here (JSON)")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's data directory")
    return parser


def summary_line(report: dict[str, Any]) -> str:
    base, during, prune = report["baseline"], report["during_prune"], report["prune"]
    return (
        f"baseline p50 {base['p50_ms']} ms p99 {base['p99_ms']} ms ({base['requests']} requests); "
        f"during prune p50 {during.get('p50_ms')} ms p99 {during.get('p99_ms')} ms ({during['requests']} requests, "
        f"prune {prune['seconds']} s, deleting {report['stored_events']['after_baseline']:,} → "
        f"{report['stored_events']['after_prune']:,}); p99 ratio {report['p99_ratio']} "
        f"(other processes: {base['cores']['others']} / {during['cores']['others']} cores) "
        f"(bar ≤ {BAR_RATIO}: {'met' if report['bar']['met'] else 'NOT met'})"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(summary_line(report), file=sys.stderr)
    return 0 if report["bar"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
