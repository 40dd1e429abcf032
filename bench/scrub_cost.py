"""Cost of the redaction engine: ``stackwatch.scrub.scrub_event`` per event, on real SDK events and a busy one.

The events are the ``event`` items of the captured SDK requests in ``tests/fixtures/sdk-envelopes`` (Python and
Node SDKs, 3-23 kB of JSON, stack traces with source context and frame variables) and one synthetic "busy" event
(~30 kB: 10 frames, four of them with variables nested 8 deep, 50 breadcrumbs, a 2.5 kB log message, a few
secrets).

Every call scrubs a *different* event, as the digest does: before each call (outside the timed region) the
volatile parts of the event are rewritten for that call -- ids and timestamps regenerated, a per-call suffix on
every string under frame ``vars``, breadcrumbs, ``extra``, ``user``, ``request``, exception values and messages.
Source context lines, file names, module and function names, SDK and runtime details stay as they are, because
they repeat from one event to the next in real traffic.  The ``cold`` column clears the engine's string cache
before every call (the worst case: nothing has been seen before).

    python -m bench.scrub_cost               # ~4 s: table on stderr, one JSON line on stdout
    python -m bench.scrub_cost --seconds 2   # longer runs, steadier figures
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stackwatch.scrub import ScrubOptions, scrub_event
from stackwatch.scrub.text import clear_cache
from stackwatch.server.ingest.decode import decode_body
from stackwatch.server.ingest.envelope import parse_envelope

__all__ = ["busy_event", "fixture_events", "main", "measure"]

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "sdk-envelopes"
# The per-event budget the digest can afford for scrubbing (see bench/README.md).
BUDGET_US = 300.0
_MAX_BODY = 20 * 1024 * 1024

# Subtrees whose strings differ from one event to the next, and keys whose values are regenerated.
_VOLATILE_SUBTREES = frozenset({"vars", "breadcrumbs", "extra", "user", "request", "message", "logentry"})
_VOLATILE_STRINGS = frozenset({"value", "message", "formatted", "culprit", "transaction"})
_HEX_IDS = {"event_id": 32, "trace_id": 32, "span_id": 16, "parent_span_id": 16}
_TIMESTAMPS = frozenset({"timestamp", "start_timestamp"})

OPTION_SETS: dict[str, ScrubOptions] = {
    "default": ScrubOptions(),
    "emails+ips": ScrubOptions(scrub_emails=True, scrub_ips=True),
}


def fixture_events(root: Path = FIXTURES) -> list[tuple[str, dict[str, Any]]]:
    """``(name, event)`` for every ``event`` item of the captured requests, bodies decoded as ingest does."""
    events: list[tuple[str, dict[str, Any]]] = []
    for meta_path in sorted(root.glob("*/*.req.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        headers = {str(k).lower(): str(v) for k, v in meta["headers"].items()}
        body = meta_path.with_name(meta_path.name.replace(".req.json", ".body")).read_bytes()
        envelope = parse_envelope(decode_body(body, headers.get("content-encoding", ""), _MAX_BODY))
        for item in envelope.items:
            if item.type == "event":
                event = json.loads(item.payload)
                if isinstance(event, dict):
                    events.append((f"{meta_path.parent.name}/{meta_path.name[:4]}", event))
    return events


def busy_event(seed: int = 1) -> dict[str, Any]:
    """A large error event: deep frame variables, many breadcrumbs, long messages, a few secrets among them."""
    rng = random.Random(seed)
    words = ["order", "step", "retry", "webhook", "tenant", "payload", "queue", "worker", "commit", "fetch", "parse"]

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    def leaf() -> Any:
        return rng.choice([sentence(6), f"'{sentence(3)}'", rng.randint(0, 10**6), 3.25, None, True])

    def nested(depth: int) -> Any:
        if depth == 0:
            return leaf()
        return {f"{rng.choice(words)}_{i}": leaf() for i in range(2)} | {"child": nested(depth - 1), "items": [leaf()]}

    frames = []
    for i in range(10):
        frames.append(
            {
                "filename": f"meshhook/steps/step_{i}.py",
                "abs_path": f"/srv/meshhook/meshhook/steps/step_{i}.py",
                "function": f"handle_{rng.choice(words)}_{i}",
                "module": f"meshhook.steps.step_{i}",
                "lineno": 10 + i,
                "pre_context": [f"    {sentence(5)}" for _ in range(5)],
                "context_line": f"    result = client.post(url, json=payload, timeout={i})",
                "post_context": [f"    {sentence(4)}" for _ in range(5)],
                "vars": {
                    "self": f"<meshhook.steps.Step{i} object at 0x7f5f43ab{i:04x}>",
                    "url": f"'https://api.example.com/v{i}/orders?page={i}'",
                    "payload": nested(8 if i > 5 else 2),
                    "headers": {"Accept": "'application/json'", "Authorization": "'Bearer 9f8e7d6c5b4a3921'"},
                    "attempt": i,
                },
                "in_app": i > 3,
            }
        )
    log = "\n".join(f"{sentence(12)} step={i} took {rng.randint(1, 900)} ms" for i in range(25))
    return {
        "event_id": "0" * 32,
        "timestamp": "2026-11-28T16:56:34.776662Z",
        "level": "error",
        "platform": "python",
        "logger": "meshhook.worker",
        "message": {"formatted": log + "\nretrying with postgres://app:s3cret-pw@db.internal:5432/orders"},
        "exception": {
            "values": [
                {
                    "type": "HTTPError",
                    "value": f"POST https://api.example.com/hooks?token=abcdef123456 failed: {sentence(30)}",
                    "module": "meshhook.http",
                    "stacktrace": {"frames": frames},
                }
            ]
        },
        "breadcrumbs": {
            "values": [
                {
                    "category": rng.choice(["http", "step", "query", "log"]),
                    "message": sentence(6) if i % 10 else f"charged card 4111 1111 1111 1111 for {sentence(3)}",
                    "level": "info",
                    "timestamp": "2026-11-28T16:56:34.776324Z",
                    "data": {"url": f"https://api.example.com/items/{i}", "status_code": 200, "method": "GET"},
                }
                for i in range(50)
            ]
        },
        "contexts": {
            "trace": {"trace_id": "389e7eddb50c45e0baa2bfaf528f60ca", "span_id": "824a86bc769635e7"},
            "runtime": {"name": "CPython", "version": "3.11.7"},
            "workflow": {"workflow_id": "wf_orders", "run_id": "run_0", "step": "call-crm", "attempt": 2},
        },
        "tags": {"component": "http-executor", "workflow_id": "wf_orders", "run_id": "run_0"},
        "user": {"id": "user-42", "email": "alice@example.com", "ip_address": "203.0.113.9"},
        "extra": {"notes": sentence(200), "config": {"api_key": "k-123456", "region": "eu-west-1"}},
        "modules": {f"package-{i}": f"1.{i}.0" for i in range(40)},
        "release": "meshhook-worker@1.4.2",
        "environment": "production",
        "server_name": "worker-7",
        "sdk": {"name": "sentry.python", "version": "2.75.0"},
    }


def vary(event: Any, n: int) -> Any:
    """A copy of ``event`` as the ``n``-th event of its kind: new ids and timestamps, per-call volatile strings.

    Containers are copied, scalars shared (they are immutable).
    """
    rng = random.Random(n)
    suffix = f" #{n}"

    def walk(value: Any, key: str | None, volatile: bool) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k, volatile or k in _VOLATILE_SUBTREES) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, None, volatile) for v in value]
        if isinstance(value, str):
            if key in _HEX_IDS:
                return f"{rng.getrandbits(4 * _HEX_IDS[key]):0{_HEX_IDS[key]}x}"
            if key in _TIMESTAMPS:
                return f"2026-11-28T16:{n // 60 % 60:02d}:{n % 60:02d}.{n % 10**6:06d}Z"
            if volatile or key in _VOLATILE_STRINGS:
                return value + suffix
        return value

    return walk(event, None, False)


@dataclass(frozen=True, slots=True)
class Row:
    events: str
    options: str
    calls: int
    median_us: float
    p99_us: float
    events_per_s: float
    cold_median_us: float
    cold_p99_us: float


def _timed(
    stream: Iterator[Any], options: ScrubOptions, seconds: float, before: Callable[[], None] | None
) -> list[float]:
    """Microseconds per ``scrub_event`` call over a stream of events, for about ``seconds`` of scrubbing."""
    samples: list[float] = []
    spent = 0
    budget = int(seconds * 1e9)
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()  # as in the digest, which runs its batches without the cyclic collector
    try:
        while spent < budget or len(samples) < 50:
            event = next(stream)
            if before is not None:
                before()
            start = clock()
            scrub_event(event, options)
            elapsed = clock() - start
            spent += elapsed
            samples.append(elapsed / 1000)
    finally:
        gc.enable()
    return samples


def _stream(events: list[dict[str, Any]], seed: int) -> Iterator[Any]:
    n = seed * 1_000_000
    while True:
        for event in events:
            n += 1
            yield vary(event, n)


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def measure(name: str, events: list[dict[str, Any]], options_name: str, seconds: float, seed: int) -> Row:
    options = OPTION_SETS[options_name]
    # Warm-up: compile caches, fill the string cache with what repeats (source lines, module names, ...).
    _timed(_stream(events, seed + 1), options, min(0.1, seconds / 4), None)
    warm = _timed(_stream(events, seed), options, seconds, None)
    cold = _timed(_stream(events, seed + 2), options, seconds / 3, clear_cache)
    clear_cache()
    return Row(
        events=name,
        options=options_name,
        calls=len(warm),
        median_us=round(statistics.median(warm), 1),
        p99_us=round(_p99(warm), 1),
        events_per_s=round(len(warm) / (sum(warm) / 1e6)),
        cold_median_us=round(statistics.median(cold), 1),
        cold_p99_us=round(_p99(cold), 1),
    )


def _table(rows: list[Row], sizes: dict[str, float]) -> str:
    lines = [
        "events              options     calls  median µs   p99 µs  events/s  cold median µs  cold p99 µs",
        "------------------  ----------  -----  ---------  -------  --------  --------------  -----------",
    ]
    for r in rows:
        label = f"{r.events} ({sizes[r.events] / 1000:.1f} kB)"
        lines.append(
            f"{label:<18}  {r.options:<10}  {r.calls:>5}  {r.median_us:>9.1f}  {r.p99_us:>7.1f}  "
            f"{r.events_per_s:>8,.0f}  {r.cold_median_us:>14.1f}  {r.cold_p99_us:>11.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scrub_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="scrubbing time per row (default 0.5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="the sdk-envelopes directory")
    args = parser.parse_args(argv)

    fixtures = [event for _, event in fixture_events(args.fixtures)]
    if not fixtures:
        parser.error(f"no event items under {args.fixtures}")
    sets = {"fixtures": fixtures, "busy": [busy_event(args.seed)]}
    sizes = {name: statistics.mean(len(json.dumps(e)) for e in events) for name, events in sets.items()}
    rows = [
        measure(name, events, options_name, args.seconds, args.seed)
        for name, events in sets.items()
        for options_name in OPTION_SETS
    ]
    title = (
        f"scrub_event cost per event, {len(fixtures)} fixture events + 1 busy event, Python {platform.python_version()}"
    )
    print(title, file=sys.stderr)
    print(_table(rows, sizes), file=sys.stderr)
    fixture_default = next(r for r in rows if r.events == "fixtures" and r.options == "default")
    report = {
        "bench": "scrub_cost",
        "python": platform.python_version(),
        "fixture_events": len(fixtures),
        "mean_event_bytes": {name: round(size) for name, size in sizes.items()},
        "budget_us": BUDGET_US,
        "fixtures_default_median_within_budget": fixture_default.median_us < BUDGET_US,
        "rows": [asdict(r) for r in rows],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
