"""Every dashboard answer carries ``Server-Timing: app;dur=<ms>``: pages, redirects and errors alike."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from starlette.responses import HTMLResponse
from starlette.testclient import TestClient

from stackwatch.server.web.context import Web
from tests.conftest import Stack
from tests.support import exception_event, send_ok
from tests.test_web_auth import add_user, login

TIMING = re.compile(r"^app;dur=(\d+(?:\.\d+)?)$")


def duration(response: httpx.Response) -> float:
    header = response.headers.get("server-timing")
    assert header is not None, f"no Server-Timing on {response.request.url} ({response.status_code})"
    match = TIMING.match(header)
    assert match, header
    return float(match.group(1))


@pytest.fixture
def admin(stack: Stack) -> TestClient:
    add_user(stack, "ops@example.com", admin=True)
    login(stack.client, "ops@example.com")
    return stack.client


def test_pages_carry_their_server_time(stack: Stack, admin: TestClient) -> None:
    send_ok(stack, exception_event("ValueError", "went wrong"))
    stack.digest()
    issue_id = stack.api("/projects/python/issues").json()["data"][0]["id"]
    for path in (
        "/",
        "/projects/python/issues",
        "/projects/python/issues/rows",
        f"/issues/{issue_id}",
        f"/issues/{issue_id}/summary",
        f"/issues/{issue_id}/impact",
        "/projects/python/trends",
        "/projects/python/settings",
        "/account/tokens",
    ):
        page = admin.get(path)
        assert page.status_code == 200, (path, page.text)
        assert 0 <= duration(page) < 60_000, path


def test_errors_and_redirects_carry_it_too(stack: Stack, admin: TestClient) -> None:
    missing = admin.get("/issues/987654")
    assert missing.status_code == 404
    duration(missing)
    refused = admin.post("/projects/python/issues/bulk", data={"action": "resolve", "csrf_token": "wrong"})
    assert refused.status_code == 403
    duration(refused)
    anonymous = TestClient(stack.app)
    redirect = anonymous.get("/projects/python/issues", follow_redirects=False)
    assert redirect.status_code in (302, 303, 307)
    duration(redirect)
    assert duration(anonymous.get("/login")) >= 0


def test_the_time_is_the_handler_time(stack: Stack, admin: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The figure measures the handler: a page made 50 ms slower reports at least 50 ms."""
    real_page = Web.page

    def slow_page(self: Web, name: str, values: Mapping[str, Any], *, status_code: int = 200) -> HTMLResponse:
        time.sleep(0.05)
        return real_page(self, name, values, status_code=status_code)

    monkeypatch.setattr(Web, "page", slow_page)
    slow = duration(admin.get("/account/tokens"))
    assert slow >= 50
