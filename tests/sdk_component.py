"""A MeshHook-like component process for the ``stackwatch.sdk`` tests: ``python tests/sdk_component.py SCENARIO``.

sentry-sdk's state is process-global, so every scenario runs in a process of its own.  The DSN comes from the
environment (``STACKWATCH_DSN``/``SENTRY_DSN``), the spool from ``STACKWATCH_SPOOL_DIR``, and the scenario's data
from the JSON file named by ``SDK_TEST_INPUT``.  A scenario prints one JSON line of results at the end, unless it
dies on purpose.  Everything runs inside functions: the module frame's variables would otherwise be reported too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import sentry_sdk

import stackwatch.sdk
from stackwatch.sdk import step_scope, workflow_scope

log = logging.getLogger("meshhook.orchestrator")
SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {}


def scenario(func: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Callable[[dict[str, Any]], Any]:
    SCENARIOS[func.__name__] = func
    return func


def init(data: dict[str, Any], **overrides: Any) -> None:
    options: dict[str, Any] = {"component": "orchestrator", "shutdown_timeout": 10}
    options.update(data.get("init") or {})
    options.update(overrides)
    stackwatch.sdk.init(**options)


def done(**result: Any) -> dict[str, Any]:
    stackwatch.sdk.flush(timeout=10)
    return result


# -- init ---------------------------------------------------------------------------------------------------------


@scenario
def options(data: dict[str, Any]) -> dict[str, Any]:
    init(data)
    client = sentry_sdk.get_client()
    opts = client.options
    return {
        "active": client.is_active(),
        "dsn": opts["dsn"],
        "send_default_pii": client.should_send_default_pii(),
        "include_local_variables": opts["include_local_variables"],
        "max_request_body_size": opts["max_request_body_size"],
        "event_scrubber": type(opts["event_scrubber"]).__name__,
        "transport": type(client.transport).__name__,
        "spool_dir": str(getattr(client.transport, "spool_dir", "")),
        "max_bytes": getattr(client.transport, "max_bytes", None),
        "integrations": sorted(client.integrations),
        "hooks": {
            name: getattr(opts[name], "__qualname__", None)
            for name in ("before_send", "before_send_transaction", "before_breadcrumb", "before_send_log")
        },
        "global_tags": dict(sentry_sdk.get_global_scope()._tags),
    }


@scenario
def message(data: dict[str, Any]) -> dict[str, Any]:
    init(data)
    event_id = stackwatch.sdk.capture_message(f"hello from the orchestrator {data['suffix']}")
    return done(event_id=event_id)


@scenario
def no_dsn(data: dict[str, Any]) -> dict[str, Any]:
    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    logging.getLogger("stackwatch.sdk").addHandler(Collect())
    init(data)
    init(data)
    event_id = stackwatch.sdk.capture_message("nobody hears this")
    return {"warnings": warnings, "event_id": event_id, "active_transport": sentry_sdk.get_client().transport}


@scenario
def user_hooks(data: dict[str, Any]) -> dict[str, Any]:
    seen: list[str] = []

    def before_send(event: Any, hint: Any) -> Any:
        # The application's hook sees the event before redaction and may add to it; ours runs after.
        seen.append(event["logentry"]["formatted"] if "logentry" in event else event.get("message", ""))
        event.setdefault("extra", {})["added_by_app"] = f"https://ops:{data['secret']}@internal.test/"
        return None if "drop me" in seen[-1] else event

    init(data, before_send=before_send)
    stackwatch.sdk.capture_message(f"keep me {data['suffix']}")
    stackwatch.sdk.capture_message(f"drop me {data['suffix']}")
    return done(seen_by_app=seen)


# -- uncaught errors ----------------------------------------------------------------------------------------------


@scenario
def crash(data: dict[str, Any]) -> None:
    init(data)
    raise RuntimeError(f"orchestrator crashed {data['suffix']}")


@scenario
def thread(data: dict[str, Any]) -> dict[str, Any]:
    init(data)

    def step_worker() -> None:
        raise KeyError(f"missing step output {data['suffix']}")

    worker = threading.Thread(target=step_worker)
    worker.start()
    worker.join(10)
    return done()


@scenario
def logging_error(data: dict[str, Any]) -> dict[str, Any]:
    init(data)
    log.error("call failed: %s (order %s)", data["url"], data["order"])
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed for order %s", data["order"])
    return done()


async def _fail(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


@scenario
def asyncio_unretrieved(data: dict[str, Any]) -> dict[str, Any]:
    """``init`` before the loop, no ``instrument_asyncio``: the loop's exception handler path still reports."""
    init(data)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(_fail(f"task died unretrieved {data['suffix']}"))
        for _ in range(100):
            if task.done():
                break
            await asyncio.sleep(0.01)
        del task
        gc.collect()

    asyncio.run(main())
    return done()


@scenario
def asyncio_instrumented(data: dict[str, Any]) -> dict[str, Any]:
    """``instrument_asyncio()`` in the loop: a failing task is reported at once, with the task's workflow scope."""
    init(data)

    async def main() -> bool:
        instrumented = stackwatch.sdk.instrument_asyncio()
        with workflow_scope("wf_async", f"run_async_{data['suffix']}", capture_errors=False):
            task = asyncio.create_task(_fail(f"task died instrumented {data['suffix']}"))
        for _ in range(100):
            if task.done():
                break
            await asyncio.sleep(0.01)
        del task
        gc.collect()  # the unretrieved exception now also reaches the asyncio logger: reported once only
        return instrumented

    instrumented = asyncio.run(main())
    return done(instrumented=instrumented, outside_loop=stackwatch.sdk.instrument_asyncio())


@scenario
def asyncio_init_in_loop(data: dict[str, Any]) -> dict[str, Any]:
    async def main() -> list[str]:
        init(data)
        task = asyncio.create_task(_fail(f"task died after init in loop {data['suffix']}"))
        await asyncio.wait([task], timeout=5)
        task.exception()  # retrieved: only the integration's own report remains
        return sorted(sentry_sdk.get_client().integrations)

    integrations = asyncio.run(main())
    return done(integrations=integrations)


# -- workflow scopes ----------------------------------------------------------------------------------------------


class Run:
    def __init__(self, workflow_id: str, run_id: str) -> None:
        self.workflow_id = workflow_id
        self.id = run_id


@scenario
def scope_forms(data: dict[str, Any]) -> dict[str, Any]:
    init(data)
    suffix = data["suffix"]

    with workflow_scope(f"wf_{suffix}", f"run_cm_{suffix}", tenant="acme", queue="orchestrator", job_id="job-1"):
        stackwatch.sdk.capture_message(f"form cm {suffix}")
        with step_scope("fetch-orders", "http", attempt=2):
            stackwatch.sdk.capture_message(f"form nested step {suffix}")
        with step_scope("notify"):
            stackwatch.sdk.capture_message(f"form second step {suffix}")

    @workflow_scope(workflow_id=lambda a: a["run"].workflow_id, run_id=lambda a: a["run"].id, step_id="transform")
    def execute(run: Run, attempt: int = 3) -> None:
        stackwatch.sdk.capture_message(f"form decorator sync {suffix}")

    @workflow_scope(
        workflow_id=lambda a: a["run"].workflow_id,
        run_id=lambda a: a["run"].id,
        attempt=lambda a: a["attempt"],
        step_id=lambda a: a["step"],
        step_type="http",
    )
    async def execute_async(run: Run, step: str, attempt: int = 1) -> None:
        await asyncio.sleep(0)
        stackwatch.sdk.capture_message(f"form decorator async {suffix}")

    async def async_cm() -> None:
        async with workflow_scope(f"wf_{suffix}", f"run_acm_{suffix}", workflow_version=7):
            await asyncio.sleep(0)
            stackwatch.sdk.capture_message(f"form async cm {suffix}")

    execute(Run(f"wf_{suffix}", f"run_dec_{suffix}"))
    asyncio.run(execute_async(Run(f"wf_{suffix}", f"run_adec_{suffix}"), "charge", attempt=4))
    asyncio.run(async_cm())
    stackwatch.sdk.capture_message(f"form outside {suffix}")
    return done()


@scenario
def isolation_threads(data: dict[str, Any]) -> dict[str, Any]:
    init(data)
    barrier = threading.Barrier(2, timeout=10)

    def run(name: str) -> None:
        with workflow_scope(f"wf_{name}", f"run_{name}_{data['suffix']}", tenant=f"tenant_{name}"):
            barrier.wait()  # both scopes are open at the same time
            stackwatch.sdk.capture_message(f"thread {name} {data['suffix']}")
            barrier.wait()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for worker in threads:
        worker.start()
    for worker in threads:
        worker.join(15)
    return done()


@scenario
def isolation_tasks(data: dict[str, Any]) -> dict[str, Any]:
    init(data)

    async def run(name: str, barrier: asyncio.Barrier) -> None:
        async with workflow_scope(f"wf_{name}", f"run_{name}_{data['suffix']}", tenant=f"tenant_{name}"):
            await barrier.wait()
            stackwatch.sdk.capture_message(f"task {name} {data['suffix']}")
            await barrier.wait()

    async def main() -> None:
        barrier = asyncio.Barrier(2)
        await asyncio.wait_for(asyncio.gather(run("a", barrier), run("b", barrier)), timeout=10)

    asyncio.run(main())
    return done()


@scenario
def escape(data: dict[str, Any]) -> None:
    """Errors escaping a workflow scope keep its context, and are reported once."""
    init(data)
    suffix = data["suffix"]

    async def step() -> None:
        async with workflow_scope(f"wf_{suffix}", f"run_esc_{suffix}", step_id="charge", attempt=3):
            await asyncio.sleep(0)
            raise ConnectionError(f"step escaped {suffix}")

    async def captured_step() -> None:
        async with workflow_scope(f"wf_{suffix}", f"run_cap_{suffix}", capture_errors=True):
            await asyncio.sleep(0)
            raise TimeoutError(f"captured step escaped {suffix}")

    async def main() -> None:
        for work in (step, captured_step):
            try:
                await asyncio.create_task(work())
            except (ConnectionError, TimeoutError):
                # The orchestrator's retry loop, outside the step's scope and in another asyncio context.
                log.exception("step failed")

    asyncio.run(main())
    stackwatch.sdk.flush(timeout=10)
    with workflow_scope(f"wf_{suffix}", f"run_fatal_{suffix}"):
        raise RuntimeError(f"run escaped to the top {suffix}")


# -- the leak scenario --------------------------------------------------------------------------------------------


class PaymentClient:
    def __init__(self, secrets: dict[str, str], order: str) -> None:
        self.config = {
            "stripe": {"api_key": secrets["stripe_api_key"], "mode": "live", "account": {"order": order}},
            "database": {"url": f"postgres://app:{secrets['url_password']}@db.internal:5432/meshhook"},
        }


def charge(client: PaymentClient, secrets: dict[str, str], order: str, correlation: str) -> None:
    config = client.config  # a nested dict as a frame variable
    password = secrets["password"]  # a frame variable under a secret-looking name
    request = {  # a request-like dict as a frame variable
        "url": f"https://api.partner.test/v1/charges?token={secrets['query_token']}&order={order}",
        "headers": {"Authorization": f"Bearer {secrets['bearer_token']}", "X-Correlation-Id": correlation},
        "body": {"card": secrets["card_number"], "iban": secrets["iban"], "order": order},
    }
    try:
        raise PermissionError(f"upstream rejected token {secrets['jwt_token']} for {order}")
    except PermissionError as error:
        raise ConnectionError(
            f"charge failed for {order} with key {config['stripe']['api_key']} at {request['url']} ({len(password)})"
        ) from error


def plant(data: dict[str, Any]) -> dict[str, str]:
    """Capture errors, messages and logs that carry every secret in ``data['secrets']``; return the event ids.

    A secret either has a recognizable shape or sits under a secret-looking name, as in a real configuration:
    an opaque value under an innocent name is indistinguishable from an order number.
    """
    s: dict[str, str] = data["secrets"]
    order, correlation, suffix = data["order"], data["correlation"], data["suffix"]
    ids: dict[str, str] = {}
    log.setLevel(logging.INFO)  # INFO records become breadcrumbs

    sentry_sdk.set_user(
        {"id": "user-42", "data": {"session_token": s["opaque_secret"], "note": f"token {s['github_token']}"}}
    )
    sentry_sdk.set_tag("callback_url", f"https://hooks.partner.test/cb?token={s['query_token']}")
    sentry_sdk.set_tag("order", order)
    sentry_sdk.set_context(
        "partner", {"api_key": s["opaque_secret"], "signing_pem": s["pem_private_key"], "order": order}
    )
    sentry_sdk.set_extra("aws", f"deploy key id {s['aws_access_key']}")
    sentry_sdk.set_extra("payment", {"iban": s["iban"], "card": s["card_number"], "correlation_id": correlation})
    sentry_sdk.add_breadcrumb(category="http", message=f"POST with Authorization: Bearer {s['bearer_token']}")
    sentry_sdk.add_breadcrumb(
        category="http",
        message=f"webhook for {order}",
        data={"webhook_secret": s["opaque_secret"], "url": f"https://u:{s['url_password']}@h.test/x"},
    )
    sentry_sdk.get_isolation_scope().add_event_processor(
        lambda event, hint: {
            **event,
            "request": {
                "url": f"https://api.meshhook.test/hooks/{order}?token={s['query_token']}",
                "method": "POST",
                "query_string": f"token={s['query_token']}&order={order}",
                "headers": {"Authorization": f"Bearer {s['bearer_token']}", "X-Api-Key": s["opaque_secret"]},
                "cookies": {"session": s["opaque_secret"]},
                "data": {"card": s["card_number"], "password": s["password"]},
            },
        }
    )
    log.info("refreshing credentials with token %s", s["opaque_secret"])

    with workflow_scope(f"wf_{suffix}", f"run_{suffix}", step_id="charge", step_type="http", attempt=1, tenant="acme"):
        try:
            charge(PaymentClient(s, order), s, order, correlation)
        except ConnectionError:
            ids["exception"] = stackwatch.sdk.capture_exception() or ""
        url = f"https://svc:{s['url_password']}@internal.test/"
        ids["message"] = stackwatch.sdk.capture_message(f"cannot reach {url} for {order}") or ""
        log.error("call failed: %s (order %s, github %s)", data["url_with_token"], order, s["github_token"])
        log.error(
            "refresh with token %s failed for order %s", s["opaque_secret"], order, extra={"password": s["password"]}
        )
    return ids


@scenario
def leaks(data: dict[str, Any]) -> None:
    init(data)
    ids = plant(data)
    print(json.dumps(done(ids=ids)), flush=True)
    s = data["secrets"]
    with workflow_scope(f"wf_{data['suffix']}", f"run_{data['suffix']}"):
        raise SystemError(f"worker crashed with AWS key {s['aws_access_key']} for {data['order']}")


# -- the shared redaction vectors ---------------------------------------------------------------------------------


@scenario
def vectors(data: dict[str, Any]) -> dict[str, Any]:
    """Each vector in the places a component puts data: ``extra``, a tag, a breadcrumb, a logging argument; key
    vectors as an ``extra`` entry; whole-event vectors merged into a captured message.  One event each."""
    init(data)
    ids: dict[str, str] = {}
    for i, text in enumerate(data["strings"]):
        with sentry_sdk.isolation_scope() as scope:
            scope.set_extra("v", text)
            scope.set_tag("v", text[:200])
            sentry_sdk.add_breadcrumb(category="log", message=text)
            ids[f"s{i}"] = stackwatch.sdk.capture_message(f"vector s{i}") or ""
            log.error("vector s%d: %s", i, text)
    for i, (key, value) in enumerate(data["keys"]):
        with sentry_sdk.isolation_scope() as scope:
            scope.set_extra(key, value)
            ids[f"k{i}"] = stackwatch.sdk.capture_message(f"vector k{i}") or ""
    for i, fields in enumerate(data["events"]):
        with sentry_sdk.isolation_scope() as scope:
            scope.add_event_processor(lambda event, hint, fields=fields: {**event, **fields})
            ids[f"e{i}"] = stackwatch.sdk.capture_message(f"vector e{i}") or ""
    return done(ids=ids)


def main() -> None:
    name = sys.argv[1]
    with open(os.environ["SDK_TEST_INPUT"]) as handle:
        data = json.load(handle)
    result = SCENARIOS[name](data)
    if result is not None:
        print(json.dumps(result, default=repr), flush=True)


if __name__ == "__main__":
    main()
