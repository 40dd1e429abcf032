"""``stackwatch demo`` against a running server: issues from all three components, with workflow context, and
none of the planted secrets visible anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackwatch.demo import COMPONENTS, javascript, planted_secrets
from stackwatch.server.services import Services
from tests import support
from tests.conftest import NODE_KEY, PYTHON_KEY, ServerProcess, free_port, skip_or_fail

pytestmark = pytest.mark.slow


def api(server: ServerProcess, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}/api/v1{path}", params=params, headers={"Authorization": f"Bearer {server.token}"}
    )


def issues(server: ServerProcess, **filters: Any) -> list[dict[str, Any]]:
    response = api(server, "/projects/python/issues", limit=100, **filters)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_demo_fills_a_dashboard_without_leaking(server: ServerProcess, services: Services, tmp_path: Path) -> None:
    dsn = f"http://{PYTHON_KEY}@127.0.0.1:{server.port}/1"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKWATCH_", "SENTRY_"))}
    command = [sys.executable, "-m", "stackwatch", "demo", "--workload", "python", "--dsn", dsn, "--runs", "12"]
    result = subprocess.run(
        [*command, "--spool-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "crashed with a fatal error, as planned" in result.stdout

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not issues(server, level="fatal"):
        time.sleep(0.2)
    server.wait_digested()

    for component in COMPONENTS:
        found = issues(server, component=component)
        assert found, f"no issue from {component}"
        events = [
            event for issue in found for event in api(server, f"/issues/{issue['id']}/events", limit=100).json()["data"]
        ]
        with_context = [e for e in events if e["workflow_id"] and e["run_id"] and e["step_id"]]
        assert with_context, f"{component}: no event with workflow, run and step"
        assert {e["component"] for e in events} == {component}
    fatal = issues(server, level="fatal")
    assert len(fatal) == 1 and "state is corrupt" in fatal[0]["title"]
    crash = api(server, f"/issues/{fatal[0]['id']}/events").json()["data"][0]
    assert (crash["component"], crash["step_id"]) == ("orchestrator", "checkpoint") and crash["run_id"]
    kinds = {issue["title"].split(":")[0] for issue in issues(server)}
    assert {"TargetHTTPError", "TimeoutError", "TransformError", "LeaseLostError", "SignatureMismatch"} <= kinds

    seen = support.crawl_api(lambda path, **params: api(server, path, **params))
    stored = support.stored_bytes(services.engine)
    for name, secret in planted_secrets(1).items():
        assert secret.encode() not in seen, f"the {name} secret is visible in the API"
        assert secret.encode() not in stored, f"the {name} secret is stored"
    assert b"[Filtered" in seen and b"wf_order_sync" in seen


def test_serve_with_demo_fills_a_fresh_installation_once(tmp_path: Path) -> None:
    """What ``make run`` does: ``serve --demo`` on a fresh data directory sends the demo; a restart does not."""
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKWATCH_", "SENTRY_"))}
    env["STACKWATCH_LOG_LEVEL"] = "info"
    port = free_port()
    command = [sys.executable, "-m", "stackwatch", "serve", "--demo", "--port", str(port), "--data-dir", str(data_dir)]

    def start(log_name: str) -> subprocess.Popen[bytes]:
        with open(tmp_path / log_name, "wb") as log:
            return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    process = start("first.log")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (data_dir / "admin-password").exists():
            time.sleep(0.1)
        token = subprocess.run(
            [sys.executable, "-m", "stackwatch", "token", "create", "--data-dir", str(data_dir)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        headers = {"Authorization": f"Bearer {token}"}
        url = f"http://127.0.0.1:{port}/api/v1/projects/default/issues"
        components: set[str] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and components != set(COMPONENTS):
            time.sleep(0.5)
            try:
                found = httpx.get(url, params={"limit": 100, "level": "fatal"}, headers=headers).json().get("data", [])
            except httpx.HTTPError:
                continue
            components = {
                c for c in COMPONENTS if httpx.get(url, params={"component": c}, headers=headers).json()["data"]
            }
            if not found:
                components.discard("orchestrator")  # wait for the crash report too
        assert components == set(COMPONENTS), (tmp_path / "first.log").read_text()
    finally:
        process.terminate()
        process.wait(30)
    assert "Demo:" in (tmp_path / "first.log").read_text()

    again = start("second.log")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Uvicorn running" not in (tmp_path / "second.log").read_text():
            time.sleep(0.1)
    finally:
        again.terminate()
        again.wait(30)
    assert "Uvicorn running" in (tmp_path / "second.log").read_text()
    assert "Demo:" not in (tmp_path / "second.log").read_text()  # the project has events: no second helping


def test_demo_js_workload_sends_meshhook_events(server: ServerProcess, services: Services, tmp_path: Path) -> None:
    """``stackwatch demo --workload js``: the MeshHook example (examples/meshhook) on @stackwatch/sdk, installed and
    built by the demo itself, fills the ``node`` project with issues of its three components."""
    if javascript.missing():
        skip_or_fail("node", f"the JavaScript demo needs {javascript.missing()}")
    dsn = f"http://{NODE_KEY}@127.0.0.1:{server.port}/2"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKWATCH_", "SENTRY_"))}
    command = [sys.executable, "-m", "stackwatch", "demo", "--workload", "js", "--dsn", dsn, "--runs", "15"]
    command += ["--seed", "3", "--spool-dir", str(tmp_path / "spool")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=javascript.TIMEOUT + 60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runs: 4 completed, 11 failed as planned" in result.stdout, result.stdout

    def node_issues(**filters: Any) -> list[dict[str, Any]]:
        response = api(server, "/projects/node/issues", limit=100, **filters)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(node_issues()) < 8:
        time.sleep(0.2)
    server.wait_digested()

    runs: set[str] = set()
    for component in ("orchestrator", "http-exec"):
        found = node_issues(component=component)
        assert found, f"no issue from {component}"
        events = [
            event for issue in found for event in api(server, f"/issues/{issue['id']}/events", limit=100).json()["data"]
        ]
        assert {e["component"] for e in events} == {component}
        assert all(e["workflow_id"] and e["run_id"] and e["step_id"] and e["tenant"] for e in events), events
        runs |= {e["run_id"] for e in events}
        for event in events:
            data = api(server, f"/events/{event['event_id']}").json()["data"]
            tags = data.get("tags") or {}
            tags = dict(tags) if isinstance(tags, list) else tags
            assert tags.get("attempt") and tags.get("workflow_version"), tags
            assert data["contexts"]["workflow"]["run_id"] == event["run_id"]
    assert len(runs) == 11, "each failed run is one event"
    titles = {issue["title"].split(":")[0] for issue in node_issues()}
    assert {"StepFailedError", "DefinitionError", "TypeError", "HttpStatusError"} <= titles, titles
    api_titles = {issue["title"].split(":")[0] for issue in node_issues(component="api")}
    assert {"Error", "TypeError", "SyntaxError"} <= api_titles, f"the SvelteKit API's issues: {api_titles}"

    seen = support.crawl_api(lambda path, **params: api(server, path, **params))
    stored = support.stored_bytes(services.engine)
    for name, secret in javascript.planted_secrets(3).items():
        assert secret.encode() not in seen, f"the {name} secret is visible in the API"
        assert secret.encode() not in stored, f"the {name} secret is stored"
    assert b"wf_order_sync" in seen


def test_demo_js_workload_says_what_it_needs(tmp_path: Path) -> None:
    """Without node on the PATH, ``--workload js`` stops at once and names what is missing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKWATCH_", "SENTRY_"))}
    env["PATH"] = str(tmp_path)  # python itself is started by its full path
    result = subprocess.run(
        [sys.executable, "-m", "stackwatch", "demo", "--workload", "js", "--dsn", "http://k@127.0.0.1:9/1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the JavaScript workload needs node on the PATH" in result.stderr
