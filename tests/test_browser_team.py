"""The issue page's team workflow in a real browser against ``stackwatch serve``: assigning (from the list of those
who may see the project, and "Assign to me"), commenting in Markdown, and the Activity section, for an
administrator and a member."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from tests.browser import Tab, new_tab
from tests.conftest import ServerFactory, ServerProcess
from tests.test_browser import add_user, api, send_message

pytestmark = pytest.mark.slow


@pytest.fixture
def dashboard(start_server: ServerFactory, services: Services) -> ServerProcess:
    add_user(services, "ops@example.com", admin=True)
    add_user(services, "dev@example.com")
    with services.engine.begin() as connection:
        accounts.add_member(connection, "python", "dev@example.com")
    return start_server()


@pytest.fixture
def tab(chromium: Any, dashboard: ServerProcess, screenshots: Path) -> Iterator[Tab]:
    yield from new_tab(chromium, dashboard, screenshots)


def _activity_lines(tab: Tab) -> list[str]:
    return [" ".join(t.split()).split(" · ")[0] for t in tab.page.locator("ol.timeline li p.what").all_inner_texts()]


def test_assign_and_comment(tab: Tab, dashboard: ServerProcess) -> None:
    send_message(dashboard, "payment provider timed out")
    dashboard.wait_digested()
    issue_id = api(dashboard, "/projects/python/issues")["data"][0]["id"]
    page = tab.page
    tab.login("ops@example.com")
    tab.open(f"/issues/{issue_id}")
    assert page.locator("#activity .empty").is_visible()

    page.select_option("select[name=assignee]", "dev@example.com")
    page.click("form.assign button[value=assign]")
    page.wait_for_url(re.compile(rf"/issues/{issue_id}#assignee$"))
    assert page.locator("select[name=assignee]").input_value() == "dev@example.com"
    page.click("form.assign button.assign-me")
    page.wait_for_load_state()
    assert page.locator("select[name=assignee]").input_value() == "ops@example.com"
    assert page.locator("form.assign button.assign-me").count() == 0
    assert api(dashboard, f"/issues/{issue_id}")["assignee"] == "ops@example.com"

    page.fill("#comment-text", "Retrying **fixes** it, see [the runbook](https://example.com/runbook)\n`retry=3`")
    page.click("form.comment-form button[type=submit]")
    page.wait_for_url(re.compile(rf"/issues/{issue_id}#activity$"))
    body = page.locator("ol.timeline li.kind-comment .comment-body").last
    assert body.locator("strong").inner_text() == "fixes" and body.locator("code").inner_text() == "retry=3"
    link = body.locator("a")
    assert link.get_attribute("href") == "https://example.com/runbook"
    assert link.get_attribute("rel") == "nofollow noopener noreferrer"
    page.click("button[value=resolve]")
    page.wait_for_load_state()
    assert _activity_lines(tab) == [
        "ops@example.com assigned the issue to dev@example.com",
        "ops@example.com assigned the issue to ops@example.com",
        "ops@example.com commented",
        "ops@example.com resolved the issue",
    ]
    tab.shot("issue-activity")
    tab.assert_clean()

    for member in new_tab(page.context.browser, dashboard, tab.screenshots):
        member.login("dev@example.com")
        member.open(f"/issues/{issue_id}")
        member.page.fill("#comment-text", "On it.")
        member.page.click("form.comment-form button[type=submit]")
        member.page.wait_for_url(re.compile(rf"/issues/{issue_id}#activity$"))
        member.page.click("form.assign button.assign-me")
        member.page.wait_for_load_state()
        assert member.page.locator("select[name=assignee]").input_value() == "dev@example.com"
        assert _activity_lines(member)[-2:] == [
            "dev@example.com commented",
            "dev@example.com assigned the issue to dev@example.com",
        ]
        member.assert_clean()
    kinds = [entry["kind"] for entry in api(dashboard, f"/issues/{issue_id}/activity")["data"]]
    assert kinds == ["assigned", "assigned", "comment", "status", "comment", "assigned"]
