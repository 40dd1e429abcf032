"""``workflow_scope`` and ``step_scope``: the forms (``with``, ``async with``, decorators with callables), nesting,
isolation between threads and asyncio tasks, and exceptions that escape a scope.

The scope mechanics are checked in this process (scopes work without a client and restore what they change);
the events themselves come from a component process sending to a local recording server.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk

from stackwatch.sdk import current_workflow, step_scope, workflow_scope
from stackwatch.sdk.scope import workflow_of_exception
from tests.sdk_support import Recorder, by_message, mechanism, recording, run_component


@pytest.fixture
def recorder() -> Any:
    with recording() as running:
        yield running


def tags() -> dict[str, Any]:
    return dict(sentry_sdk.get_isolation_scope()._tags)


# -- mechanics, in this process -------------------------------------------------------------------------------------


def test_context_manager_sets_and_restores() -> None:
    before = tags()
    with workflow_scope("wf_1", "run_1", tenant="acme", attempt=2, queue="q", job_id="j-1") as workflow:
        assert workflow == current_workflow()
        assert current_workflow() == {
            "workflow_id": "wf_1",
            "run_id": "run_1",
            "attempt": 2,
            "tenant": "acme",
            "queue": "q",
            "job_id": "j-1",
        }
        assert {k: tags()[k] for k in ("workflow_id", "run_id", "attempt", "tenant")} == {
            "workflow_id": "wf_1",
            "run_id": "run_1",
            "attempt": "2",
            "tenant": "acme",
        }
        assert "queue" not in tags() and "job_id" not in tags()  # context only
    assert current_workflow() == {} and tags() == before


def test_nesting_inherits_the_run_and_starts_new_steps() -> None:
    with workflow_scope("wf_1", "run_1", tenant="acme", step_id="outer", step_type="router", attempt=1):
        with step_scope("fetch", "http", attempt=3):
            assert current_workflow() == {
                "workflow_id": "wf_1",
                "run_id": "run_1",
                "step_id": "fetch",
                "step_type": "http",
                "attempt": 3,
                "tenant": "acme",
            }
            with step_scope("parse"):
                # A new step does not inherit the enclosing step's type or attempt, neither in context nor tags.
                assert current_workflow() == {
                    "workflow_id": "wf_1",
                    "run_id": "run_1",
                    "step_id": "parse",
                    "tenant": "acme",
                }
                assert "step_type" not in tags() and "attempt" not in tags()
        with workflow_scope(tenant="globex"):
            assert current_workflow()["tenant"] == "globex" and current_workflow()["step_id"] == "outer"
        assert current_workflow()["step_id"] == "outer"


def test_decorator_with_callables_on_sync_and_async_functions() -> None:
    class Run:
        workflow_id, id = "wf_dec", "run_dec"

    seen: list[dict[str, Any]] = []

    @workflow_scope(workflow_id=lambda a: a["run"].workflow_id, run_id=lambda a: a["run"].id, attempt=lambda a: a["n"])
    def sync_step(run: Run, n: int = 5) -> str:
        seen.append(current_workflow())
        return "done"

    @workflow_scope(workflow_id="wf_static", run_id=lambda a: a["run_id"], step_id=lambda a: a["kwargs"]["step"])
    async def async_step(run_id: str, **kwargs: Any) -> str:
        await asyncio.sleep(0)
        seen.append(current_workflow())
        return "async done"

    assert sync_step.__name__ == "sync_step" and async_step.__name__ == "async_step"
    assert sync_step(Run()) == "done"
    assert asyncio.run(async_step("run_a", step="fetch")) == "async done"
    assert seen == [
        {"workflow_id": "wf_dec", "run_id": "run_dec", "attempt": 5},
        {"workflow_id": "wf_static", "run_id": "run_a", "step_id": "fetch"},
    ]
    assert current_workflow() == {}


def test_a_failing_callable_is_left_out_and_a_wrong_call_still_raises_its_own_error() -> None:
    @workflow_scope("wf_1", run_id=lambda a: a["run"].id)
    def step(run: object) -> dict[str, Any]:
        return current_workflow()

    assert step(object()) == {"workflow_id": "wf_1"}  # ``object().id`` raised inside the callable
    with pytest.raises(TypeError, match="argument"):
        step()  # type: ignore[call-arg]


def test_callables_need_the_decorator_form() -> None:
    with pytest.raises(TypeError, match="decorator form"), workflow_scope("wf_1", run_id=lambda a: "run"):
        pass


def test_one_decorated_function_serves_concurrent_calls() -> None:
    @workflow_scope("wf_1", run_id=lambda a: a["run_id"])
    async def step(run_id: str, gate: asyncio.Event) -> str:
        await gate.wait()
        return str(current_workflow()["run_id"])

    async def main() -> list[str]:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(step(f"run_{i}", gate)) for i in range(5)]
        await asyncio.sleep(0.01)
        gate.set()
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)

    assert asyncio.run(main()) == [f"run_{i}" for i in range(5)]


def test_one_scope_object_entered_by_concurrent_tasks() -> None:
    shared = workflow_scope("wf_shared", "run_shared")

    async def step(name: str, barrier: asyncio.Barrier) -> tuple[str, str]:
        async with shared:
            with step_scope(name):
                await barrier.wait()
                inside = current_workflow()["step_id"]
            await barrier.wait()
        return inside, str(current_workflow())

    async def main() -> list[tuple[str, str]]:
        barrier = asyncio.Barrier(2)
        return await asyncio.wait_for(asyncio.gather(step("a", barrier), step("b", barrier)), timeout=10)

    assert asyncio.run(main()) == [("a", "{}"), ("b", "{}")]


def test_isolation_between_threads() -> None:
    barrier = threading.Barrier(3, timeout=10)
    seen: dict[str, Any] = {}

    def worker(name: str) -> None:
        with workflow_scope(f"wf_{name}", f"run_{name}"):
            barrier.wait()  # every scope is open at once
            seen[name] = (current_workflow()["run_id"], tags()["run_id"])
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(name,)) for name in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert seen == {name: (f"run_{name}", f"run_{name}") for name in "abc"}


def test_isolation_between_tasks() -> None:
    async def run(name: str, barrier: asyncio.Barrier) -> tuple[str, str]:
        async with workflow_scope(f"wf_{name}", f"run_{name}"):
            await barrier.wait()
            result = (current_workflow()["run_id"], tags()["run_id"])
            await barrier.wait()
            return result

    async def main() -> list[tuple[str, str]]:
        barrier = asyncio.Barrier(3)
        return await asyncio.wait_for(asyncio.gather(*(run(name, barrier) for name in "abc")), timeout=10)

    assert asyncio.run(main()) == [(f"run_{name}", f"run_{name}") for name in "abc"]


def test_an_escaping_exception_carries_the_innermost_scope() -> None:
    with pytest.raises(LookupError) as raised, workflow_scope("wf_1", "run_1"), step_scope("fetch", "http"):
        raise LookupError("no such order")
    assert workflow_of_exception(raised.value) == {
        "workflow_id": "wf_1",
        "run_id": "run_1",
        "step_id": "fetch",
        "step_type": "http",
    }
    try:
        try:
            with workflow_scope("wf_2", "run_2"):
                raise KeyError("inner")
        except KeyError as error:
            raise RuntimeError("wrapped by the engine") from error
    except RuntimeError as wrapped:
        assert workflow_of_exception(wrapped)["run_id"] == "run_2"
    with pytest.raises(KeyboardInterrupt) as interrupted, workflow_scope("wf_3", "run_3"):
        raise KeyboardInterrupt  # not an error of the workflow: left alone
    assert workflow_of_exception(interrupted.value) == {}


# -- events, from a component process -------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_form_tags_its_events(tmp_path: Path, recorder: Recorder) -> None:
    run = uuid.uuid4().hex[:8]
    run_component("scope_forms", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run})
    events = recorder.wait_events(7)

    def workflow(label: str) -> tuple[dict[str, str], dict[str, Any]]:
        event = by_message(events, f"{label} {run}")
        return {k: v for k, v in event["tags"].items() if k != "component"}, event["contexts"].get("workflow", {})

    assert workflow("form cm") == (
        {"workflow_id": f"wf_{run}", "run_id": f"run_cm_{run}", "tenant": "acme"},
        {
            "workflow_id": f"wf_{run}",
            "run_id": f"run_cm_{run}",
            "tenant": "acme",
            "queue": "orchestrator",
            "job_id": "job-1",
        },
    )
    step_tags, step_context = workflow("form nested step")
    assert step_tags == {
        "workflow_id": f"wf_{run}",
        "run_id": f"run_cm_{run}",
        "tenant": "acme",
        "step_id": "fetch-orders",
        "step_type": "http",
        "attempt": "2",
    }
    assert (step_context["attempt"], step_context["queue"]) == (2, "orchestrator")
    assert workflow("form second step")[0]["step_id"] == "notify"
    assert workflow("form decorator sync")[0] == {
        "workflow_id": f"wf_{run}",
        "run_id": f"run_dec_{run}",
        "step_id": "transform",
    }
    assert workflow("form decorator async")[0] == {
        "workflow_id": f"wf_{run}",
        "run_id": f"run_adec_{run}",
        "step_id": "charge",
        "step_type": "http",
        "attempt": "4",
    }
    assert workflow("form async cm")[0] == {
        "workflow_id": f"wf_{run}",
        "workflow_version": "7",
        "run_id": f"run_acm_{run}",
    }
    assert workflow("form outside") == ({}, {})

    # One breadcrumb per step; a later step's error still shows the earlier steps of the same run.
    second = by_message(events, f"form second step {run}")
    trail = [c["message"] for c in second["breadcrumbs"]["values"] if c.get("category") == "workflow"]
    assert trail == ["step fetch-orders (http) attempt 2 started", "step notify started"]


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["threads", "tasks"])
def test_concurrent_runs_each_get_their_own_tags(tmp_path: Path, recorder: Recorder, unit: str) -> None:
    run = uuid.uuid4().hex[:8]
    run_component(f"isolation_{unit}", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run})
    events = recorder.wait_events(2)
    kind = unit[:-1]
    for name in ("a", "b"):
        event = by_message(events, f"{kind} {name} {run}")
        assert (event["tags"]["run_id"], event["tags"]["tenant"]) == (f"run_{name}_{run}", f"tenant_{name}")
        assert event["contexts"]["workflow"]["run_id"] == f"run_{name}_{run}"


@pytest.mark.slow
def test_errors_escaping_a_scope_keep_its_context_and_are_reported_once(tmp_path: Path, recorder: Recorder) -> None:
    run = uuid.uuid4().hex[:8]
    run_component("escape", tmp_path / "spool", dsn=recorder.dsn(), data={"suffix": run}, returncode=1)
    events = recorder.wait_events(3)

    # Reported by the orchestrator's ``logger.exception`` after the step's scope ended: the step's tags.
    logged = by_message(events, f"ConnectionError: step escaped {run}")
    assert logged["logger"] == "meshhook.orchestrator"
    assert {k: logged["tags"][k] for k in ("run_id", "step_id", "attempt")} == {
        "run_id": f"run_esc_{run}",
        "step_id": "charge",
        "attempt": "3",
    }
    assert logged["contexts"]["workflow"]["attempt"] == 3

    # ``capture_errors=True``: reported inside the scope; the orchestrator's log call does not report it again.
    captured = by_message(events, f"captured step escaped {run}")
    assert mechanism(captured) == {"type": "workflow", "handled": False}
    assert captured["tags"]["run_id"] == f"run_cap_{run}"

    # Uncaught at the top: fatal, with the run it escaped from.
    fatal = by_message(events, f"run escaped to the top {run}")
    assert (fatal["level"], fatal["tags"]["run_id"]) == ("fatal", f"run_fatal_{run}")
    assert len(recorder.events()) == 3
