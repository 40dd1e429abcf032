"""The issue list's search box and saved searches in a real browser (Debian's Chromium, driven by Playwright)
against ``stackwatch serve``, with events from the real ``sentry-sdk``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import Tab, new_tab
from tests.conftest import ServerProcess
from tests.test_browser import dashboard, rows, send_with_sdk  # noqa: F401 - the fixture, used by name

pytestmark = pytest.mark.slow


@pytest.fixture
def tab(chromium: Any, dashboard: ServerProcess, screenshots: Path) -> Iterator[Tab]:  # noqa: F811
    yield from new_tab(chromium, dashboard, screenshots)


def _search(tab: Tab, query: str) -> None:
    tab.page.fill("input[name=query]", query)
    tab.page.click("form.filters button[type=submit]")
    tab.page.wait_for_load_state("load")


def test_search_save_open_and_delete(tab: Tab, dashboard: ServerProcess) -> None:  # noqa: F811
    page = tab.page
    tab.login("ops@example.com")
    suffix = uuid.uuid4().hex[:8]
    send_with_sdk(dashboard, suffix)
    dashboard.wait_digested()
    tab.open("/projects/python/issues")
    assert len(rows(tab)) == 2

    _search(tab, "component:http-executor level:error,fatal has:user")
    assert [title.split(":")[0] for title in rows(tab)] == ["TimeoutError"]
    _search(tab, f'-workflow:"wf-orders-{suffix}" user:user-0,user-1')
    assert rows(tab) == []
    _search(tab, f"-workflow:wf-orders-{suffix} webhook")
    assert [title.split(":")[0] for title in rows(tab)] == ["ValueError"]

    _search(tab, "is:unresolved is:fixed")
    expect(page.locator("#search-error")).to_contain_text("unknown is: value 'fixed'")
    expect(page.locator("#search-error")).to_contain_text("(at position 18)")
    assert page.locator("input[name=query]").input_value() == "is:unresolved is:fixed"
    assert rows(tab) == []
    tab.shot("issues-search-error")

    _search(tab, f"workflow:wf-orders-{suffix} run:run-{suffix}-1")
    page.fill(".saved-searches input[name=name]", "Orders run 1")
    page.click("text=Save this search")
    page.wait_for_load_state("load")
    expect(page.locator("a.saved-search")).to_have_text(["Orders run 1"])
    tab.shot("issues-saved-searches")

    tab.open("/projects/python/issues")
    assert len(rows(tab)) == 2
    page.click("a.saved-search")
    page.wait_for_url(re.compile(r"query=workflow"))
    assert page.locator("input[name=query]").input_value() == f"workflow:wf-orders-{suffix} run:run-{suffix}-1"
    assert [title.split(":")[0] for title in rows(tab)] == ["TimeoutError"]

    page.click(".saved-searches button:text('Delete')")
    page.wait_for_load_state("load")
    assert page.locator("a.saved-search").count() == 0
    expect(page.locator(".saved-searches")).to_contain_text("None yet")
    tab.console_errors = [error for error in tab.console_errors if "status of 400" not in error]
    tab.assert_clean()
