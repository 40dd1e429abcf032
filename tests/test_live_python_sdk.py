"""The real ``sentry-sdk``, in a process of its own, against a real server: what it sends shows up in the REST API
with the right titles, MeshHook workflow columns and impact counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.conftest import PYTHON_KEY, ServerProcess

pytestmark = pytest.mark.slow

# Runs in the child. argv: DSN, a unique suffix for run ids. Prints the captured event ids as JSON on stdout,
# then dies of an uncaught exception (the SDK's excepthook integration reports it and flushes at exit).
SCRIPT = r"""
import json
import sys
import threading

import sentry_sdk

dsn, suffix = sys.argv[1], sys.argv[2]
sentry_sdk.init(dsn=dsn, release="meshhook-orchestrator@1.4.2", environment="live-test", shutdown_timeout=10)
ids = {}


def call_webhook(run_id):
    raise ConnectionError(f"webhook endpoint refused the connection (run {run_id})")


for number, tenant in ((1, "acme"), (2, "globex")):
    run_id = f"run_{suffix}_{number}"
    with sentry_sdk.new_scope() as scope:
        workflow = {"component": "http-executor", "workflow_id": f"wf_{suffix}", "run_id": run_id,
                    "step_id": "notify", "tenant": tenant}
        for key, value in workflow.items():
            scope.set_tag(key, value)
        scope.set_context("workflow", {**workflow, "queue": "executor", "job_id": f"job-{number}"})
        scope.set_user({"id": "user-42"})
        try:
            call_webhook(run_id)
        except ConnectionError:
            ids[f"exception_{number}"] = sentry_sdk.capture_exception()

with sentry_sdk.new_scope() as scope:
    scope.set_tag("component", "orchestrator")
    scope.set_tag("run_id", f"run_{suffix}_1")
    ids["message"] = sentry_sdk.capture_message(f"Orchestrator lost its lease ({suffix})", level="warning")


def step_worker():
    raise KeyError(f"missing step output {suffix}")


thread = threading.Thread(target=step_worker)
thread.start()
thread.join()
sentry_sdk.flush(timeout=10)
print(json.dumps(ids), flush=True)
raise RuntimeError(f"orchestrator crashed ({suffix})")
"""


def api(server: ServerProcess, path: str, **params: object) -> httpx.Response:
    token = server.token
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{server.base_url}/api/v1{path}", params=params, headers=headers, timeout=10)  # type: ignore[arg-type]


def test_python_sdk_events_arrive_with_workflow_context(server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    dsn = f"http://{PYTHON_KEY}@127.0.0.1:{server.port}/1"
    child = subprocess.run(
        [sys.executable, "-c", SCRIPT, dsn, suffix], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 1, f"the SDK script should die of its uncaught error:\n{child.stderr}"
    assert f"RuntimeError: orchestrator crashed ({suffix})" in child.stderr, child.stderr
    ids = json.loads(child.stdout.strip().splitlines()[-1])
    assert all(ids[name] for name in ("exception_1", "exception_2", "message")), ids
    server.wait_digested(timeout=30)

    issues = api(server, "/projects/python/issues", limit=100).json()["data"]
    by_title = {issue["title"]: issue for issue in issues}
    assert len(issues) == 4, f"expected 4 issues, got {sorted(by_title)}"

    # The same error in two runs of one workflow, for two tenants and one user: one issue, impact counted.
    connection_error = next(issue for title, issue in by_title.items() if title.startswith("ConnectionError: "))
    assert "webhook endpoint refused the connection" in connection_error["title"]
    assert connection_error["culprit"].endswith("in call_webhook"), connection_error["culprit"]
    impact = {key: connection_error[key] for key in ("count", "run_count", "workflow_count", "tenant_count")}
    assert impact == {"count": 2, "run_count": 2, "workflow_count": 1, "tenant_count": 2}, impact
    assert connection_error["user_count"] == 1
    assert connection_error["first_release"] == "meshhook-orchestrator@1.4.2"
    assert connection_error["unhandled"] is False

    message = by_title[f"Orchestrator lost its lease ({suffix})"]
    assert (message["level"], message["type"]) == ("warning", "message")

    thread_error = by_title[f"KeyError: 'missing step output {suffix}'"]
    assert (thread_error["unhandled"], thread_error["culprit"]) == (True, "__main__ in step_worker"), thread_error
    crash = by_title[f"RuntimeError: orchestrator crashed ({suffix})"]
    assert (crash["unhandled"], crash["culprit"], crash["count"]) == (True, "__main__ in <module>", 1), crash

    # "Every error of run X", across issues, from the workflow columns.
    run_events = api(server, f"/runs/run_{suffix}_1/events").json()["data"]
    assert sorted(event["event_id"] for event in run_events) == sorted([ids["exception_1"], ids["message"]])
    for event in run_events:
        assert event["release"] == "meshhook-orchestrator@1.4.2" and event["environment"] == "live-test"
    second = api(server, f"/runs/run_{suffix}_2/events").json()["data"]
    assert [event["event_id"] for event in second] == [ids["exception_2"]]
    assert second[0]["component"] == "http-executor"
    assert (second[0]["workflow_id"], second[0]["step_id"]) == (f"wf_{suffix}", "notify")
    assert (second[0]["tenant"], second[0]["user"]) == ("globex", "id:user-42")

    # The stored event keeps the workflow context as sent.
    detail = api(server, f"/events/{ids['exception_2']}").json()
    workflow = detail["data"]["contexts"]["workflow"]
    assert (workflow["queue"], workflow["job_id"], workflow["run_id"]) == ("executor", "job-2", f"run_{suffix}_2")
    assert detail["data"]["tags"]["tenant"] == "globex"
