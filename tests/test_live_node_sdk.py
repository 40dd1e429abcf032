"""The real ``@sentry/node`` (pinned in ``tests/node/package.json``) against a real server: the events it sends
show up in the REST API of the ``node`` project, with their cause chain and workflow context.

Skipped when ``node``/``npm`` are missing, unless ``STACKWATCH_TEST_REQUIRE`` names ``node``: then it fails.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import NODE_KEY, ServerProcess, skip_or_fail

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).resolve().parent / "node"
INSTALL_TIMEOUT = 300


def _installed_version() -> str | None:
    manifest = NODE_DIR / "node_modules" / "@sentry" / "node" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _pinned_version() -> str:
    return str(json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["@sentry/node"])


@pytest.fixture(scope="session")
def node_sdk() -> str:
    """The ``node`` executable, with ``tests/node/node_modules`` installed (once; safe with parallel workers)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        skip_or_fail("node", "node and npm are needed for the live @sentry/node test")
    assert node is not None and npm is not None
    with open(NODE_DIR / "package.json", "rb") as lock:  # serializes installs between pytest-xdist workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version() != _pinned_version():
            command = [npm, "ci" if (NODE_DIR / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
            try:
                done = subprocess.run(
                    command, cwd=NODE_DIR, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
                )
            except subprocess.TimeoutExpired:
                skip_or_fail("node", f"{' '.join(command[1:2])} in {NODE_DIR} took more than {INSTALL_TIMEOUT} s")
            if done.returncode != 0:
                skip_or_fail("node", f"npm could not install {NODE_DIR / 'package.json'}:\n{done.stderr[-2000:]}")
        if _installed_version() != _pinned_version():
            pytest.fail(f"@sentry/node {_installed_version()} installed, {_pinned_version()} pinned")
    return node


def api(server: ServerProcess, path: str, **params: object) -> httpx.Response:
    token = server.token
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{server.base_url}/api/v1{path}", params=params, headers=headers, timeout=10)  # type: ignore[arg-type]


def test_node_sdk_events_arrive_with_cause_and_workflow_context(node_sdk: str, server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    dsn = f"http://{NODE_KEY}@127.0.0.1:{server.port}/2"
    child = subprocess.run(
        [node_sdk, "send.mjs", dsn, suffix], cwd=NODE_DIR, capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0, f"send.mjs failed ({child.returncode}):\n{child.stdout}\n{child.stderr}"
    ids = json.loads(child.stdout.strip().splitlines()[-1])
    assert ids["flushed"] is True and ids["exception"] and ids["message"], ids
    server.wait_digested(timeout=30)

    issues = api(server, "/projects/node/issues", limit=100).json()["data"]
    by_title = {issue["title"]: issue for issue in issues}
    assert sorted(by_title) == sorted(
        [f"Error: webhook delivery failed ({suffix})", f"Orchestrator lost its lease ({suffix})"]
    ), f"unexpected issues: {sorted(by_title)}"
    error = by_title[f"Error: webhook delivery failed ({suffix})"]
    assert (error["type"], error["level"], error["platform"]) == ("Error", "error", "node"), error
    assert "deliverWebhook" in error["culprit"], error["culprit"]
    assert (error["run_count"], error["workflow_count"], error["tenant_count"], error["user_count"]) == (1, 1, 1, 1)
    assert error["first_release"] == "meshhook-web@2.0.1"
    message = by_title[f"Orchestrator lost its lease ({suffix})"]
    assert message["level"] == "warning", message  # @sentry/node sends it with a synthetic stack trace
    stored_message = api(server, f"/events/{ids['message']}").json()["data"]
    assert stored_message["logentry"]["message"] == f"Orchestrator lost its lease ({suffix})", stored_message
    assert api(server, "/projects/python/issues").json()["data"] == [], "node events landed in the python project"

    run_events = api(server, f"/runs/run_{suffix}/events").json()["data"]
    assert sorted(event["event_id"] for event in run_events) == sorted([ids["exception"], ids["message"]])
    for event in run_events:
        assert (event["component"], event["environment"]) == ("sveltekit-api", "live-test"), event

    detail = api(server, f"/events/{ids['exception']}")
    assert detail.status_code == 200, detail.text
    event = detail.json()
    assert (event["workflow_id"], event["step_id"], event["tenant"]) == (f"wf_{suffix}", "deliver", "acme")
    chain = [(value["type"], value["value"]) for value in event["data"]["exception"]["values"]]
    assert ("RangeError", f"retry budget exhausted ({suffix})") in chain, chain
    assert chain[-1] == ("Error", f"webhook delivery failed ({suffix})"), chain
    workflow = event["data"]["contexts"]["workflow"]
    assert (workflow["queue"], workflow["job_id"], workflow["run_id"]) == ("webhooks", "job-1", f"run_{suffix}")
