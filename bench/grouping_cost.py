"""Cost of grouping: version 2's hash per event against version 1's, on the same events, in one run.

The events are real-shaped errors of seven platforms (a browser TypeError with 12 frames, a Node error with
node_modules and ``node:internal`` frames, a Python error with framework frames and source lines, a 40-frame
Spring stack with lambdas and proxies, a .NET async stack, an iOS crash with system frames and one unsymbolicated
frame, a Linux native crash with libc frames) and a log message. Each of the N events is its own copy with its
own line numbers, addresses, lambda numbers and values, normalized before the clock starts; the digest hashes
every event once, so do we. Rounds alternate the versions; the table gives each version's median round.
Version 2 remembers the names it read and what the rules said of a frame (frames repeat from event to event);
the ``cold`` figure forgets all of it before its round, so every frame of the 2,000 is read for the first time.

    python -m bench.grouping_cost            # ~2 s: table on stderr, one JSON line on stdout
    python -m bench.grouping_cost --events 4000 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from stackwatch.server.digest.grouping import frames, grouping_hash
from stackwatch.server.digest.grouping import rules as grouping_rules
from stackwatch.server.digest.grouping.rules import ProjectRules
from stackwatch.server.digest.normalize import EventContext, NormalizedEvent, normalize_event

__all__ = ["events", "main", "measure"]

_PROJECT_RULES = ProjectRules.parse(
    "path:**/vendor/** -app\nfunction:std::* -group\nmodule:com.acme.* +app\n",
    "error.type:DatabaseUnavailable -> database-down\ntags.component:worker error.type:Timeout* -> {{ default }} t\n",
)


def _error(platform: str, kind: str, value: str, frames: list[dict[str, Any]]) -> dict[str, Any]:
    values = [{"type": kind, "value": value, "stacktrace": {"frames": frames}}]
    return {"platform": platform, "level": "error", "exception": {"values": values}, "tags": {"component": "api"}}


def _browser(rng: random.Random) -> dict[str, Any]:
    bundle = f"https://shop.example.com/assets/index-{rng.getrandbits(32):08x}.js"
    names = [
        "HTMLButtonElement.onclick",
        "dispatchEvent",
        "Object.invokeGuarded",
        "async Cart.checkout",
        "Array.forEach",
        "?",
        "Object.renderLines",
        "new LineView",
        "LineView.render",
        "formatPrice",
        "Intl.NumberFormat.format",
        "UserCard.render",
    ]
    frames = [
        {
            "function": n,
            "filename": "<anonymous>" if n.startswith(("Array.", "Intl.")) else bundle,
            "lineno": 1,
            "colno": rng.randint(1, 90000),
            "in_app": True,
        }
        for n in names
    ]
    return _error(
        "javascript", "TypeError", f"Cannot read properties of undefined (reading 'p{rng.randint(0, 9)}')", frames
    )


def _node(rng: random.Random) -> dict[str, Any]:
    frames = [
        {"function": "processTicksAndRejections", "filename": "node:internal/process/task_queues", "lineno": 95},
        {
            "function": "Layer.handle [as handle_request]",
            "filename": "/srv/api/node_modules/express/lib/router/layer.js",
            "module": "express.lib.router:layer",
            "lineno": 95,
        },
        {"function": "next", "filename": "/srv/api/node_modules/express/lib/router/route.js", "lineno": 149},
        {
            "function": "async createOrder",
            "filename": "/srv/api/dist/routes/orders.js",
            "module": "dist.routes:orders",
            "lineno": rng.randint(10, 200),
            "context_line": "    const order = await db.insert(payload);",
        },
        {
            "function": "Pool.query",
            "filename": "/srv/api/dist/db.js",
            "module": "dist:db",
            "lineno": rng.randint(1, 90),
            "context_line": "    throw new DatabaseError(err.message);",
        },
    ]
    return _error("node", "DatabaseError", f"relation orders_{rng.randint(1, 9)} does not exist", frames)


def _python(rng: random.Random) -> dict[str, Any]:
    frames = []
    for module, function in [
        ("django.core.handlers.base", "_get_response"),
        ("django.views.generic.base", "view"),
        ("shop.views", "checkout"),
        ("shop.payments", "charge"),
        ("shop.payments", "_post"),
    ]:
        own = module.startswith("shop")
        frames.append(
            {
                "module": module,
                "function": function,
                "lineno": rng.randint(1, 400),
                "in_app": own,
                "abs_path": f"/srv/{'shop' if own else 'venv/lib/python3.12/site-packages'}/{module}.py",
                "context_line": f"        return {function}(request, *args)",
            }
        )
    return _error("python", "PaymentError", f"card {rng.randint(1000, 9999)} declined", frames)


def _java(rng: random.Random) -> dict[str, Any]:
    frames = [
        {"module": m, "function": f, "lineno": rng.randint(1, 900), "filename": m.rsplit(".", 1)[-1] + ".java"}
        for m, f in [
            ("java.lang.Thread", "run"),
            ("org.apache.tomcat.util.threads.TaskThread$WrappingRunnable", "run"),
            ("java.util.concurrent.ThreadPoolExecutor$Worker", "run"),
        ]
    ]
    frames += [
        {"module": f"org.springframework.web.filter.Filter{i}", "function": "doFilter", "lineno": i} for i in range(25)
    ]
    frames += [
        {"module": f"com.acme.billing.api.BatchController$$SpringCGLIB$${rng.randint(0, 3)}", "function": "submit"},
        {"module": f"jdk.internal.reflect.GeneratedMethodAccessor{rng.randint(1, 500)}", "function": "invoke"},
        {"module": "com.acme.billing.api.BatchController", "function": "submit", "lineno": 40},
        {"module": "com.acme.billing.BatchService", "function": "totals", "lineno": 77},
        {"module": "java.util.stream.ReferencePipeline$3$1", "function": "accept", "lineno": 197},
        {
            "module": f"com.acme.billing.BatchService$$Lambda${rng.randint(1, 2000)}/0x{rng.getrandbits(40):016x}",
            "function": "apply",
        },
        {"module": "com.acme.billing.BatchService", "function": f"lambda$totals${rng.randint(0, 5)}", "lineno": 81},
        {"module": "com.acme.billing.Invoice", "function": "share", "lineno": 19},
    ]
    return _error("java", "ArithmeticException", "/ by zero", frames)


def _dotnet(rng: random.Random) -> dict[str, Any]:
    frames = [
        {"module": "System.Threading.ExecutionContext", "function": "RunInternal", "in_app": False},
        {
            "module": "Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor",
            "function": "Execute",
            "in_app": False,
        },
        {
            "module": f"Shop.Orders.OrderService+<PlaceOrderAsync>d__{rng.randint(1, 9)}",
            "function": "MoveNext",
            "in_app": True,
        },
        {
            "module": f"Shop.Orders.OrderService+<>c__DisplayClass{rng.randint(1, 9)}_0",
            "function": "<PlaceOrderAsync>b__0",
            "in_app": True,
        },
        {"module": "Shop.Orders.PriceRules", "function": "Apply", "in_app": True},
    ]
    return _error(
        "csharp", "System.NullReferenceException", "Object reference not set to an instance of an object.", frames
    )


def _cocoa(rng: random.Random) -> dict[str, Any]:
    base = 0x100000000 + rng.getrandbits(20) * 0x1000
    app = "/private/var/containers/Bundle/Application/X/Shop.app/Shop"
    frames = [
        {"function": "start", "package": "/usr/lib/dyld", "instruction_addr": "0x1c80e9dec", "in_app": False},
        {
            "function": "UIApplicationMain",
            "package": "/System/Library/PrivateFrameworks/UIKitCore.framework/UIKitCore",
            "instruction_addr": "0x1a4186f20",
            "in_app": False,
        },
        {
            "function": "-[SHFeedController(Analytics) reload]",
            "package": app,
            "instruction_addr": hex(base + 0x3F21C),
            "image_addr": hex(base),
            "in_app": True,
        },
        {
            "function": "closure #1 (Swift.Result<Shop.Feed, Swift.Error>) -> () in Shop.FeedController.load() -> ()",
            "package": app,
            "instruction_addr": hex(base + 0x3F988),
            "image_addr": hex(base),
            "in_app": True,
        },
        {"package": app, "instruction_addr": hex(base + 0x41000), "image_addr": hex(base), "in_app": True},
    ]
    return _error("cocoa", "EXC_BAD_ACCESS", "KERN_INVALID_ADDRESS at 0x10", frames)


def _native(rng: random.Random) -> dict[str, Any]:
    libc, exe = "/lib/x86_64-linux-gnu/libc.so.6", "/opt/render/bin/render-server"
    frames = [
        {"function": f, "package": libc, "instruction_addr": hex(rng.getrandbits(44))}
        for f in ("__libc_start_main", "start_thread")
    ]
    frames += [
        {"function": f, "package": exe, "instruction_addr": hex(rng.getrandbits(44))}
        for f in (
            "main",
            "render::Worker::run(std::vector<render::Job, std::allocator<render::Job> > const&)",
            "std::thread::_State_impl<std::thread::_Invoker<std::tuple<void (render::Pool::*)()> > >::_M_run()",
            "(anonymous namespace)::decode(unsigned char const*, unsigned long)",
            "render::mesh::Loader::parse(std::basic_string_view<char, std::char_traits<char> >) const",
        )
    ]
    frames += [
        {"function": f, "package": libc, "instruction_addr": hex(rng.getrandbits(44))} for f in ("raise", "abort")
    ]
    return _error("native", "SIGSEGV", "Segfault", frames)


def _message(rng: random.Random) -> dict[str, Any]:
    return {
        "platform": "python",
        "level": "warning",
        "logger": "billing",
        "message": f"run {rng.randint(1, 10**6)} of user{rng.randint(1, 99)}@example.com exceeded max retries (5)",
    }


_MAKERS: tuple[Callable[[random.Random], dict[str, Any]], ...] = (
    _browser,
    _node,
    _python,
    _java,
    _dotnet,
    _cocoa,
    _native,
    _message,
)


def events(count: int, seed: int = 7) -> list[NormalizedEvent]:
    rng = random.Random(seed)
    context = EventContext(project_id=1, received_at=1_800_000_000.0, client_ip=None)
    return [normalize_event(_MAKERS[i % len(_MAKERS)](rng), context) for i in range(count)]


def _forget() -> None:
    """Empty version 2's memories of names and rule results: every frame is then read for the first time."""
    frames.rewrite.cache_clear()
    frames._read.cache_clear()
    grouping_rules.SEEN.clear()


def _round(batch: list[NormalizedEvent], version: int, rules: ProjectRules, *, cold: bool = False) -> float:
    if cold:
        _forget()
    start = time.perf_counter()
    for event in batch:
        grouping_hash(event, version, rules)
    return time.perf_counter() - start


def measure(count: int, rounds: int) -> dict[str, float]:
    """Median µs per event of each version (and of version 2 with project rules), and the ratios to version 1."""
    batch = events(count)
    empty = ProjectRules()
    timings: dict[str, list[float]] = {"v1": [], "v2": [], "v2+rules": [], "v2_cold": []}
    for _ in range(rounds):
        timings["v1"].append(_round(batch, 1, empty))
        timings["v2_cold"].append(_round(batch, 2, empty, cold=True))
        timings["v2"].append(_round(batch, 2, empty))
        timings["v2+rules"].append(_round(batch, 2, _PROJECT_RULES))
    per_event = {name: statistics.median(values) / count * 1e6 for name, values in timings.items()}
    return {
        "events": count,
        **{f"{name}_us": round(value, 2) for name, value in per_event.items()},
        "ratio_v2_v1": round(per_event["v2"] / per_event["v1"], 2),
        "ratio_v2_rules_v1": round(per_event["v2+rules"] / per_event["v1"], 2),
        "ratio_v2_cold_v1": round(per_event["v2_cold"] / per_event["v1"], 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    result = measure(args.events, args.rounds)
    print(
        f"{result['events']} events: v1 {result['v1_us']} µs/event, v2 {result['v2_us']} µs/event "
        f"(x{result['ratio_v2_v1']}), v2 with project rules {result['v2+rules_us']} µs/event "
        f"(x{result['ratio_v2_rules_v1']}), v2 with nothing remembered {result['v2_cold_us']} µs/event "
        f"(x{result['ratio_v2_cold_v1']})",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
