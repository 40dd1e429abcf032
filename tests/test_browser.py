"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against ``stackwatch serve``.

Events come from the real ``sentry-sdk`` in a process of its own. Each test also takes screenshots of the pages it
visits (``make screenshots`` keeps them in ``docs/screenshots``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from tests.browser import PASSWORD, Tab, new_tab
from tests.conftest import NODE_KEY, PYTHON_KEY, ServerFactory, ServerProcess

pytestmark = pytest.mark.slow

# Runs in the child: argv DSN, suffix, then "name=value" pairs of extra tags. Sends, per run, one error of a
# MeshHook step inside a workflow scope, and one error of the API component; prints the event ids as JSON.
SDK_SCRIPT = r"""
import json
import sys

import sentry_sdk

dsn, suffix, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
sentry_sdk.init(dsn=dsn, release="meshhook@2.0.0", environment="production", shutdown_timeout=10)
ids = []


def deliver(target, attempt):
    headers = {"x-signature": "computed"}
    raise TimeoutError(f"target {target} did not answer in 30 s")


def verify_signature(body):
    raise ValueError("webhook signature mismatch")


for number in range(runs):
    with sentry_sdk.new_scope() as scope:
        tags = {"component": "http-executor", "workflow_id": f"wf-orders-{suffix}", "run_id": f"run-{suffix}-{number}",
                "step_id": "notify-customer", "tenant": "acme"}
        for key, value in tags.items():
            scope.set_tag(key, value)
        scope.set_context("workflow", tags)
        scope.set_user({"id": f"user-{number % 2}"})
        try:
            deliver("https://hooks.example.com/orders", number)
        except TimeoutError:
            ids.append(sentry_sdk.capture_exception())
with sentry_sdk.new_scope() as scope:
    scope.set_tag("component", "api")
    scope.set_tag("workflow_id", f"wf-signup-{suffix}")
    try:
        verify_signature(b"{}")
    except ValueError:
        ids.append(sentry_sdk.capture_exception())
sentry_sdk.flush(timeout=10)
print(json.dumps(ids), flush=True)
"""


def send_with_sdk(server: ServerProcess, suffix: str, runs: int = 3) -> list[str]:
    dsn = f"http://{PYTHON_KEY}@127.0.0.1:{server.port}/1"
    script = server.data_dir.parent / "http_executor.py"  # a file, so that frames have source context
    script.write_text(SDK_SCRIPT)
    child = subprocess.run(
        [sys.executable, str(script), dsn, suffix, str(runs)],
        cwd=script.parent,  # sentry-sdk counts files under the working directory as the application's
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ids: list[str] = __import__("json").loads(child.stdout.strip().splitlines()[-1])
    assert len(ids) == runs + 1 and all(ids), child.stderr
    return ids


def send_message(server: ServerProcess, message: str, dsn: str = "") -> None:
    """One error-level message through the real SDK."""
    dsn = dsn or f"http://{PYTHON_KEY}@127.0.0.1:{server.port}/1"
    code = "import sentry_sdk, sys; sentry_sdk.init(sys.argv[1]); sentry_sdk.capture_message(sys.argv[2], 'error')"
    subprocess.run([sys.executable, "-c", code, dsn, message], check=True, timeout=60)


def add_user(services: Services, email: str, *, admin: bool = False) -> int:
    with services.engine.begin() as connection:
        return accounts.create_user(connection, email, PASSWORD, admin=admin)


@pytest.fixture
def dashboard(start_server: ServerFactory, services: Services) -> ServerProcess:
    add_user(services, "ops@example.com", admin=True)
    return start_server()


@pytest.fixture
def tab(chromium: Any, dashboard: ServerProcess, screenshots: Path) -> Iterator[Tab]:
    yield from new_tab(chromium, dashboard, screenshots)


def api(server: ServerProcess, path: str, **params: object) -> Any:
    headers = {"Authorization": f"Bearer {server.token}"}
    response = httpx.get(f"{server.base_url}/api/v1{path}", params=params, headers=headers, timeout=10)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return response.json()


def issue_titled(server: ServerProcess, prefix: str) -> dict[str, Any]:
    issues = api(server, "/projects/python/issues", limit=100)["data"]  # every status
    return next(issue for issue in issues if issue["title"].startswith(prefix))


def rows(tab: Tab) -> list[str]:
    return [text.strip() for text in tab.page.locator("#issue-rows a.title").all_inner_texts()]


def test_log_in_see_sdk_events_filter_open_resolve(tab: Tab, dashboard: ServerProcess) -> None:
    page = tab.page
    tab.open("/")
    assert page.url.endswith("/login?next=/")
    tab.shot("login")
    tab.login("ops@example.com")
    assert page.locator("h1").inner_text() == "Projects"

    suffix = uuid.uuid4().hex[:8]
    send_with_sdk(dashboard, suffix)
    dashboard.wait_digested()
    tab.open("/")
    python_row = page.locator("table.projects tr", has_text="Python")
    assert python_row.locator("td.number").first.inner_text() == "2"  # open issues
    assert python_row.locator("svg.sparkline polyline").get_attribute("points")
    tab.shot("projects")

    page.click("text=Python")
    page.wait_for_url(re.compile(r"/projects/python/issues"))
    titles = rows(tab)
    assert any(t.startswith("TimeoutError: target https://hooks.example.com/orders") for t in titles), titles
    assert any(t.startswith("ValueError: webhook signature mismatch") for t in titles), titles
    tab.shot("issues")

    page.fill("input[name=component]", "http-executor")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"component=http-executor"))
    assert [t.split(":")[0] for t in rows(tab)] == ["TimeoutError"]
    page.fill("input[name=component]", "")
    page.fill("input[name=workflow_id]", f"wf-signup-{suffix}")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"workflow_id=wf-signup"))
    assert [t.split(":")[0] for t in rows(tab)] == ["ValueError"]

    page.fill("input[name=workflow_id]", f"wf-orders-{suffix}")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"workflow_id=wf-orders"))
    page.click("#issue-rows a.title")
    page.wait_for_url(re.compile(r"/issues/\d+$"))
    issue_url = page.url
    counts = dict(
        zip(
            page.locator("table.counts th").all_inner_texts(),
            page.locator("table.counts td").all_inner_texts(),
            strict=False,
        )
    )
    assert counts["Events"] == "3" and counts["Runs"] == "3" and counts["Users"] == "2", counts
    frames = page.locator("ol.frames li.frame.in-app .where").all_inner_texts()
    assert any("in deliver" in where for where in frames), frames
    lines = [line.strip() for line in page.locator("li.frame.in-app .context-line").all_inner_texts()]
    assert 'raise TimeoutError(f"target {target} did not answer in 30 s")' in lines, lines
    page.wait_for_selector("figure.chart .uplot canvas")  # the events chart was drawn
    tab.shot("issue")

    page.click("text=Workflow impact")
    page.wait_for_url(re.compile(r"/impact$"))
    text = page.locator("main").inner_text()
    assert f"wf-orders-{suffix}" in text and "notify-customer" in text and f"run-{suffix}-2" in text
    tab.shot("impact")
    page.click(f"text=run-{suffix}-1")
    page.wait_for_url(re.compile(rf"/runs/run-{suffix}-1$"))
    assert "TimeoutError" in page.locator("main").inner_text()
    tab.shot("run")

    tab.open("/projects/python/trends")
    page.wait_for_selector("figure.chart .uplot canvas")
    assert "Fastest-growing issues" in page.locator("main").inner_text()
    tab.shot("trends")
    tab.open("/projects/python/settings")
    assert page.locator("input.dsn").first.input_value() == f"http://{PYTHON_KEY}@127.0.0.1:{dashboard.port}/1"
    tab.shot("settings")
    tab.open("/account/tokens")
    tab.shot("tokens")
    tab.open("/account/password")
    assert "Change your password" in page.locator("main").inner_text()
    tab.shot("password")

    page.goto(issue_url)
    page.click("text=30 days")  # the chart's range, redrawn in place
    page.wait_for_url(re.compile(r"range=30d"))
    expect(page.locator("#issue-summary h2")).to_contain_text("per day, last 30 days")
    page.wait_for_selector("figure.chart .uplot canvas")
    page.click("#issue-summary button[value=resolve]")
    page.wait_for_url(issue_url)
    assert page.locator("#issue-summary .status").inner_text() == "resolved"
    assert issue_titled(dashboard, "TimeoutError")["status"] == "resolved"
    tab.assert_clean()


def test_new_events_appear_without_reload(tab: Tab, dashboard: ServerProcess) -> None:
    page = tab.page
    tab.login("ops@example.com")
    suffix = uuid.uuid4().hex[:8]
    send_with_sdk(dashboard, suffix, runs=1)
    dashboard.wait_digested()

    tab.open("/projects/python/issues")
    page.evaluate("window.stillTheSamePage = true")
    before = rows(tab)
    assert len(before) == 2
    dsn = f"http://{PYTHON_KEY}@127.0.0.1:{dashboard.port}/1"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sentry_sdk,sys; sentry_sdk.init(sys.argv[1]); "
            "sentry_sdk.capture_message(sys.argv[2], level='error'); sentry_sdk.flush(10)",
            dsn,
            f"Queue backlog {suffix}",
        ],
        check=True,
        timeout=60,
    )
    page.wait_for_selector(f"#issue-rows a.title:has-text('Queue backlog {suffix}')", timeout=20_000)
    assert page.evaluate("window.stillTheSamePage") is True  # no reload
    tab.shot("issues-live")

    # The issue page: another event of the same issue updates the counts in place.
    issue = issue_titled(dashboard, "TimeoutError")
    tab.open(f"/issues/{issue['id']}")
    page.evaluate("window.stillTheSamePage = true")
    events = page.locator("table.counts td.number").first
    assert events.inner_text() == "1"
    send_with_sdk(dashboard, suffix, runs=2)
    expect(events).to_have_text("3", timeout=20_000)
    expect(page.locator(".newer-event")).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True
    tab.assert_clean()


def test_selected_rows_hold_live_updates(tab: Tab, dashboard: ServerProcess) -> None:
    page = tab.page
    tab.login("ops@example.com")
    suffix = uuid.uuid4().hex[:8]
    send_with_sdk(dashboard, suffix, runs=1)
    dashboard.wait_digested()
    tab.open("/projects/python/issues")
    counts = page.locator("#issue-rows tr td.number:nth-child(5)")  # the Events column
    assert counts.all_inner_texts() == ["1", "1"]
    page.locator("#issue-rows input[name=issue_id]").first.check()
    expect(page.locator(".live-note")).to_be_visible()
    send_with_sdk(dashboard, suffix, runs=1)  # one more event of each issue
    page.wait_for_selector("#issue-rows[data-missed-update]")  # the update came, and waited
    assert page.locator("#issue-rows input[name=issue_id]").first.is_checked()  # the selection survived
    assert counts.all_inner_texts() == ["1", "1"]
    page.locator("#issue-rows input[name=issue_id]").first.uncheck()
    expect(page.locator(".live-note")).to_be_hidden()
    expect(counts).to_have_text(["2", "2"])  # caught up once nothing was selected
    tab.assert_clean()


def test_a_form_without_its_csrf_token_is_refused(tab: Tab, dashboard: ServerProcess) -> None:
    page = tab.page
    tab.login("ops@example.com")
    send_with_sdk(dashboard, uuid.uuid4().hex[:8], runs=1)
    dashboard.wait_digested()
    issue = issue_titled(dashboard, "TimeoutError")
    tab.open(f"/issues/{issue['id']}")
    page.evaluate("document.querySelectorAll('#issue-summary input[name=csrf_token]').forEach(e => e.remove())")
    with page.expect_navigation():
        page.click("#issue-summary button[value=resolve]")
    assert "Request refused" in page.locator("main").inner_text()
    assert issue_titled(dashboard, "TimeoutError")["status"] == "unresolved"


def test_a_member_cannot_open_another_projects_issue(
    chromium: Any,
    start_server: ServerFactory,
    services: Services,
    screenshots: Path,
) -> None:
    add_user(services, "dev@example.com")
    with services.engine.begin() as connection:
        accounts.add_member(connection, "node", "dev@example.com")
    server = start_server()
    send_with_sdk(server, uuid.uuid4().hex[:8], runs=1)  # into "python", which dev may not see
    node_dsn = f"http://{NODE_KEY}@127.0.0.1:{server.port}/2"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sentry_sdk,sys; sentry_sdk.init(sys.argv[1]); "
            "sentry_sdk.capture_message('node side', level='error'); sentry_sdk.flush(10)",
            node_dsn,
        ],
        check=True,
        timeout=60,
    )
    server.wait_digested()
    hidden = issue_titled(server, "TimeoutError")
    for tab in new_tab(chromium, server, screenshots):
        tab.login("dev@example.com")
        assert tab.page.locator("table.projects a").all_inner_texts() == ["Node"]
        response = tab.open(f"/issues/{hidden['id']}")
        assert response.status == 404
        assert "TimeoutError" not in tab.page.content()
        response = tab.open("/projects/python/issues")
        assert response.status == 404
        assert tab.dialogs == []
