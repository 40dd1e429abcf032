"""The workflow impact of an issue and the run page: numbers, order, bounds, MeshHook links, access, escaping."""

from __future__ import annotations

import dataclasses
import html
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from stackwatch.server.app import create_app
from stackwatch.server.config import ConfigError, load_settings
from stackwatch.server.storage import accounts
from stackwatch.server.web import impact
from tests.conftest import NODE_KEY, Stack
from tests.support import exception_event, issue_of, send_ok
from tests.test_web_auth import add_user, login

SCRIPT = "<script>alert(1)</script>"
NODE_AUTH = f"Sentry sentry_key={NODE_KEY}, sentry_version=7, sentry_client=tests/1.0"
TEMPLATE = "https://meshhook.example.com/t/{tenant}/workflows/{workflow_id}/runs/{run_id}?step={step_id}"
BASE = time.time() - 3600  # an hour ago: every event of these tests is in the past, in a known order


def _event(
    kind: str = "ValueError",
    *,
    at: float,
    value: str = "bad value",
    user: str | None = None,
    **workflow: str | None,
) -> dict[str, Any]:
    """An error event at ``at`` with the MeshHook workflow tags given (None: the tag is left out)."""
    tags = {key: value for key, value in workflow.items() if value is not None}
    extra: dict[str, Any] = {"user": {"id": user}} if user else {}
    return exception_event(kind, value, tags=tags, timestamp=at, **extra)


def _send_all(stack: Stack, sent: list[dict[str, Any]], **kwargs: Any) -> list[str]:
    ids = [send_ok(stack, event, **kwargs) for event in sent]
    stack.digest()
    return ids


def _table(text: str, name: str) -> list[list[str]]:
    """The data rows of ``<table class="impact {name}">`` (or ``counts {name}``) as cell texts."""
    match = re.search(rf'<table class="[\w -]*\b{name}">(.*?)</table>', text, re.S)
    assert match, f"no table {name}"
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S):
        cells = [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        if cells:
            rows.append(cells)
    return rows


@pytest.fixture
def admin(stack: Stack) -> TestClient:
    add_user(stack, "ops@example.com", admin=True)
    login(stack.client, "ops@example.com")
    return stack.client


@pytest.fixture
def linked(stack: Stack) -> Iterator[TestClient]:
    """A second app on the same database with ``meshhook_run_url`` set, an administrator logged in."""
    add_user(stack, "links@example.com", admin=True)
    settings = dataclasses.replace(stack.settings, meshhook_run_url=TEMPLATE)
    with TestClient(create_app(settings, stack.services, run_worker=False)) as client:
        login(client, "links@example.com")
        yield client


def _member(stack: Stack, email: str, *slugs: str) -> TestClient:
    add_user(stack, email)
    with stack.services.engine.begin() as connection:
        for slug in slugs:
            accounts.add_member(connection, slug, email)
    client = TestClient(stack.app)
    login(client, email)
    return client


def _sample(stack: Stack) -> int:
    """One issue over three runs of two workflows, and one event outside any workflow; returns the issue id."""
    at = BASE
    ids = _send_all(
        stack,
        [
            _event(at=at + 1, workflow_id="wf-a", run_id="r1", step_id="s1", tenant="t1", component="orch", user="u1"),
            _event(at=at + 2, workflow_id="wf-a", run_id="r1", step_id="s1", tenant="t1", component="orch", user="u2"),
            _event(at=at + 3, workflow_id="wf-a", run_id="r1", step_id="s2", tenant="t1", component="orch"),
            _event(at=at + 4, workflow_id="wf-a", run_id="r2", step_id="s1", tenant="t2", component="http"),
            _event(at=at + 5, workflow_id="wf-b", run_id="r3", step_id="s9", tenant="t1", component="orch"),
            _event(at=at + 6),
        ],
    )
    issue_id = issue_of(stack, ids[0])
    assert {issue_of(stack, event_id) for event_id in ids} == {issue_id}
    return issue_id


def test_the_impact_page_counts_workflows_steps_components_tenants_and_runs(stack: Stack, admin: TestClient) -> None:
    issue_id = _sample(stack)
    page = admin.get(f"/issues/{issue_id}/impact")
    assert page.status_code == 200, page.text
    counts = dict(re.findall(r"<th>(\w+)</th><td class=\"number\">(\d+)</td>", page.text))
    assert counts == {"Events": "6", "Runs": "3", "Workflows": "2", "Tenants": "2", "Users": "2"}
    workflows = [row[:4] for row in _table(page.text, "workflows")]
    assert workflows == [["wf-a", "4", "2", "2"], ["wf-b", "1", "1", "1"]]
    assert _table(page.text, "steps") == [["wf-a", "s1", "3", "2"], ["wf-a", "s2", "1", "1"], ["wf-b", "s9", "1", "1"]]
    assert _table(page.text, "components") == [["orch", "4"], ["http", "1"]]
    assert _table(page.text, "tenants") == [["t1", "4"], ["t2", "1"]]
    runs = [row[:4] for row in _table(page.text, "runs")]
    assert runs == [["r3", "wf-b", "s9", "1"], ["r2", "wf-a", "s1", "1"], ["r1", "wf-a", "s1, s2", "3"]]
    assert 'href="/runs/r1"' in page.text and "All 3 most recent runs." in page.text
    assert "Open in MeshHook" not in page.text  # the setting is off


def test_the_issue_page_links_to_the_impact_page(stack: Stack, admin: TestClient) -> None:
    issue_id = _sample(stack)
    assert f'<a href="/issues/{issue_id}/impact">Workflow impact</a>' in admin.get(f"/issues/{issue_id}").text


def test_impact_lists_are_bounded_and_say_so(stack: Stack, admin: TestClient) -> None:
    sent = [
        _event(at=BASE + i, workflow_id="wf", run_id=f"run-{i:02}", step_id="s", tenant=f"t{i:02}") for i in range(52)
    ]
    issue_id = issue_of(stack, _send_all(stack, sent)[0])
    page = admin.get(f"/issues/{issue_id}/impact").text
    runs = _table(page, "runs")
    assert len(runs) == 50 and runs[0][0] == "run-51" and runs[-1][0] == "run-02"  # the most recent 50
    assert "The 50 most recent runs of 52." in page
    assert len(_table(page, "tenants")) == 50 and "The 50 tenants with the most events of 52." in page
    assert "All 1 workflows with the most events." in page


def test_meshhook_links_are_percent_encoded(stack: Stack, linked: TestClient) -> None:
    run_id, workflow_id, tenant = "run/1 ?&#", "wf/a", "acme corp"
    sent = [
        _event(at=BASE + 1, workflow_id=workflow_id, run_id=run_id, step_id="s#1", tenant=tenant),
        _event(at=BASE + 2, workflow_id="wf-b", run_id="no-tenant", step_id="s2"),  # {tenant} has no value
    ]
    issue_id = issue_of(stack, _send_all(stack, sent)[0])
    expected = (
        'href="https://meshhook.example.com/t/acme%20corp/workflows/wf%2Fa/runs/run%2F1%20%3F%26%23?step=s%231" '
        'rel="noopener noreferrer"'
    )
    page = linked.get(f"/issues/{issue_id}/impact").text
    assert page.count("Open in MeshHook") == 1 and expected in page
    run_url = "/runs/" + quote(run_id, safe="")
    assert f'href="{run_url}"' in page
    run_page = linked.get(run_url)
    assert run_page.status_code == 200 and expected in run_page.text
    assert "Open in MeshHook" not in linked.get("/runs/no-tenant").text


def test_meshhook_link_needs_only_the_placeholders_it_uses() -> None:
    assert impact.meshhook_link("", {"run_id": "r"}) is None
    assert impact.meshhook_link("https://m.example/r/{run_id}", {"run_id": "a b", "tenant": None}) == (
        "https://m.example/r/a%20b"
    )
    assert impact.meshhook_link("https://m.example/{tenant}/{run_id}", {"run_id": "r", "tenant": ""}) is None
    assert impact.meshhook_link("https://m.example/{{x}}/{run_id}", {"run_id": "r"}) == "https://m.example/{x}/r"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://meshhook.example.com/{run_id}", "expected an http(s) URL"),
        ("javascript:alert(1)//{run_id}", "expected an http(s) URL"),
        ("https://meshhook.example.com/{run}", "unknown placeholder {run}"),
        ("https://meshhook.example.com/{run_id:>10}", "unknown placeholder {run_id:>10}"),
        ("https://meshhook.example.com/{}", "unknown placeholder {}"),
        ("https://meshhook.example.com/{run_id", "malformed braces"),
        ("https://meshhook.example.com/run_id}", "malformed braces"),
    ],
)
def test_a_bad_meshhook_url_fails_at_start(tmp_path: Any, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^STACKWATCH_MESHHOOK_RUN_URL: ") as failure:
        load_settings({"data_dir": str(tmp_path)}, {"STACKWATCH_MESHHOOK_RUN_URL": value})
    assert message in str(failure.value)


def test_a_good_meshhook_url_is_kept(tmp_path: Any) -> None:
    env = {"STACKWATCH_MESHHOOK_RUN_URL": TEMPLATE}
    assert load_settings({"data_dir": str(tmp_path)}, env).meshhook_run_url == TEMPLATE
    assert load_settings({"data_dir": str(tmp_path)}, {}).meshhook_run_url == ""


def test_the_run_page_lists_every_error_of_the_run_across_issues_in_time_order(stack: Stack, admin: TestClient) -> None:
    tags = {"workflow_id": "wf-x", "run_id": "run-42", "tenant": "acme"}
    sent = [
        _event("KeyError", at=BASE + 30, step_id="charge", component="http", **tags),
        _event("ValueError", at=BASE + 10, step_id="fetch", component="orch", **tags),
        _event("ValueError", at=BASE + 20, step_id="fetch", component="orch", **tags),
        _event("ValueError", at=BASE + 40, workflow_id="wf-x", run_id="run-other", step_id="fetch"),
    ]
    ids = _send_all(stack, sent)
    page = admin.get("/runs/run-42")
    assert page.status_code == 200, page.text
    rows = _table(page.text, "run-events")
    assert [row[3] for row in rows] == ["fetch", "fetch", "charge"]
    assert [row[2].split(":")[0] for row in rows] == ["ValueError", "ValueError", "KeyError"]
    value_issue, key_issue = issue_of(stack, ids[1]), issue_of(stack, ids[0])
    assert f'href="/issues/{value_issue}?event={ids[1]}"' in page.text
    assert f'href="/issues/{key_issue}?event={ids[0]}"' in page.text
    summary = dict(
        (cells[0], cells[1]) for cells in re.findall(r"<tr><th>(\w+)</th><td[^>]*>([^<]*)</td></tr>", page.text)
    )
    assert summary["Workflow"] == "wf-x" and summary["Tenant"] == "acme" and summary["Errors"] == "3"
    assert summary["Components"] == "http, orch" and summary["Steps"] == "charge, fetch"
    issues_involved = _table(page.text, "run-issues")
    assert [(row[0].split(":")[0], row[3]) for row in issues_involved] == [("ValueError", "2"), ("KeyError", "1")]
    assert "All 3 errors." in page.text and "Open in MeshHook" not in page.text


def test_the_run_page_is_bounded(stack: Stack, admin: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(impact, "RUN_EVENTS_LIMIT", 2)
    ids = _send_all(stack, [_event(at=BASE + i, run_id="long", step_id=f"s{i}") for i in (3, 1, 2)])
    page = admin.get("/runs/long").text
    assert [row[3] for row in _table(page, "run-events")] == ["s1", "s2"]  # the first two in time
    assert "The first 2 errors of 3." in page and ids


def test_the_impact_tables_read_only_the_latest_events(
    stack: Stack, admin: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(impact, "IMPACT_WINDOW", 2)
    ids = _send_all(stack, [_event(at=BASE + i, workflow_id="wf", run_id=f"r{i}", step_id="s") for i in (1, 2, 3)])
    issue_id = issue_of(stack, ids[0])
    page = admin.get(f"/issues/{issue_id}/impact").text
    assert sorted(row[0] for row in _table(page, "runs")) == ["r2", "r3"]  # stored last; r1 is outside the window
    assert "from the latest 2 of the issue's 3 events" in page
    assert _table(page, "workflows")[0][:3] == ["wf", "2", "2"]
    monkeypatch.setattr(impact, "IMPACT_WINDOW", 3)
    page = admin.get(f"/issues/{issue_id}/impact").text
    assert len(_table(page, "runs")) == 3 and "from the latest" not in page


def test_runs_show_only_the_errors_of_visible_projects(stack: Stack) -> None:
    python_id = _send_all(stack, [_event(at=BASE + 1, run_id="mixed", step_id="py-step", tenant="acme")])[0]
    node_id = _send_all(
        stack, [_event("TypeError", at=BASE + 2, run_id="mixed", step_id="node-step")], project_id=2, auth=NODE_AUTH
    )[0]
    python_only = _member(stack, "py@example.com", "python")
    page = python_only.get("/runs/mixed")
    assert page.status_code == 200 and "py-step" in page.text and "node-step" not in page.text
    assert "TypeError" not in page.text and python_id in page.text and node_id not in page.text
    node_only = _member(stack, "node@example.com", "node")
    page = node_only.get("/runs/mixed")
    assert "node-step" in page.text and "py-step" not in page.text and "acme" not in page.text
    nobody = _member(stack, "none@example.com")
    hidden, missing = nobody.get("/runs/mixed"), nobody.get("/runs/no-such-run")
    assert hidden.status_code == missing.status_code == 404 and hidden.text == missing.text
    assert "no such run" in hidden.text


def test_impact_access_is_the_issue_pages(stack: Stack) -> None:
    issue_id = _sample(stack)
    response = stack.client.get(f"/issues/{issue_id}/impact", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/login?next=/issues/{issue_id}/impact"
    assert stack.client.get("/runs/r1", follow_redirects=False).headers["location"] == "/login?next=/runs/r1"
    member = _member(stack, "dev@example.com", "node")
    hidden, missing, junk = (member.get(f"/issues/{path}/impact") for path in (issue_id, 999_999, "x1"))
    assert hidden.status_code == missing.status_code == junk.status_code == 404
    assert hidden.text == missing.text and "wf-a" not in hidden.text
    assert member.get("/runs/r1").status_code == 404


def test_event_data_is_escaped_on_the_impact_and_run_pages(stack: Stack, linked: TestClient) -> None:
    fields = {key: SCRIPT for key in ("workflow_id", "run_id", "step_id", "tenant", "component")}
    event_id = _send_all(stack, [_event(at=BASE, value=SCRIPT, **fields)])[0]
    issue_id = issue_of(stack, event_id)
    impact_page = linked.get(f"/issues/{issue_id}/impact").text
    run_page = linked.get("/runs/" + quote(SCRIPT, safe=""))
    assert run_page.status_code == 200
    for text in (impact_page, run_page.text):
        assert SCRIPT not in text and str(escape(SCRIPT)) in text and "Open in MeshHook" in text
    encoded = quote(SCRIPT, safe="")
    assert f"/runs/{encoded}?step={encoded}" in run_page.text
