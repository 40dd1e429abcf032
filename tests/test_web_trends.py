"""The project trends page: events per hour by level, the fastest-growing issues, new issues per day, access."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import LEVELS
from tests.conftest import Stack
from tests.support import exception_event, send_ok
from tests.test_web_auth import add_user, login

SCRIPT = "<script>alert(1)</script>"
HOUR, DAY = 3600, 86400


@pytest.fixture
def admin(stack: Stack) -> TestClient:
    add_user(stack, "ops@example.com", admin=True)
    login(stack.client, "ops@example.com")
    return stack.client


def _send(stack: Stack, kind: str, *stamps: float, level: str = "error", **fields: Any) -> None:
    for stamp in stamps:
        send_ok(stack, exception_event(kind, "went wrong", level=level, timestamp=stamp, **fields))


def _rows(text: str, name: str) -> list[list[str]]:
    match = re.search(rf'<table class="trend-table {name}">(.*?)</table>', text, re.S)
    assert match, f"no table {name}"
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S):
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells])
    return rows


def _charts(text: str) -> list[dict[str, Any]]:
    return [json.loads(html.unescape(raw)) for raw in re.findall(r'<figure class="chart" data-chart="([^"]*)"', text)]


def _hour_label(stamp: float, with_day: bool = False) -> str:
    hour = datetime.fromtimestamp(stamp // HOUR * HOUR, UTC)
    return hour.strftime("%Y-%m-%d %H:%M" if with_day else "%H:%M")


def test_events_per_hour_by_level(stack: Stack, admin: TestClient) -> None:
    now = time.time()
    _send(stack, "ValueError", now - 10, now - 10, level="error")  # one hour: the same moment
    _send(stack, "UserWarning", now - 3 * HOUR, level="warning")
    _send(stack, "SystemExit", now - 30 * HOUR, now - 5 * DAY, level="fatal")
    _send(stack, "ValueError", now - 8 * DAY)  # outside both ranges
    stack.digest()
    page = admin.get("/projects/python/trends")
    assert page.status_code == 200, page.text
    header, *rows, footer = _rows(page.text, "by-level")
    assert header == ["Hour (UTC)", *LEVELS, "All"] and len(rows) == 24
    by_hour = {row[0]: row[1:] for row in rows}
    assert by_hour[_hour_label(now - 10)][LEVELS.index("error")] == "2"
    assert by_hour[_hour_label(now - 3 * HOUR)][LEVELS.index("warning")] == "1"
    assert footer == ["All", "0", "2", "1", "0", "0", "3"]
    stacked, _ = _charts(page.text)
    assert stacked["kind"] == "stacked" and stacked["step"] == HOUR and len(stacked["x"]) == 24
    assert [series["label"] for series in stacked["series"]] == list(LEVELS)
    assert sum(stacked["series"][LEVELS.index("error")]["values"]) == 2
    assert "counted under its own level" in page.text

    week = admin.get("/projects/python/trends?range=7d").text
    header, *rows, footer = _rows(week, "by-level")
    assert len(rows) == 7 * 24 and footer == ["All", "2", "2", "1", "0", "0", "5"]
    by_hour = {row[0]: row[1:] for row in rows}
    assert by_hour[_hour_label(now - 5 * DAY, with_day=True)][LEVELS.index("fatal")] == "1"
    assert len(_charts(week)[0]["x"]) == 7 * 24
    assert len(_rows(admin.get("/projects/python/trends?range=1y").text, "by-level")) == 24 + 2  # unknown: 24h


def test_each_event_counts_under_its_own_level(stack: Stack, admin: TestClient) -> None:
    """One issue whose events have three levels: the chart and the table split its hour by the events' levels."""
    now = time.time()
    stamp = now - 2 * HOUR
    _send(stack, "FlakyError", stamp, level="warning")
    _send(stack, "FlakyError", stamp, stamp, level="info")
    _send(stack, "FlakyError", stamp, level="fatal")
    stack.digest()
    assert len(stack.api("/projects/python/issues").json()["data"]) == 1
    page = admin.get("/projects/python/trends").text
    _, *rows, footer = _rows(page, "by-level")
    by_hour = {row[0]: row[1:] for row in rows}
    expected = {"fatal": "1", "error": "0", "warning": "1", "info": "2", "debug": "0"}
    assert by_hour[_hour_label(stamp)] == [*(expected[level] for level in LEVELS), "4"]
    assert footer == ["All", *(expected[level] for level in LEVELS), "4"]
    stacked = _charts(page)[0]
    assert {s["label"]: sum(s["values"]) for s in stacked["series"]} == {k: int(v) for k, v in expected.items()}


def test_the_fastest_growing_issues(stack: Stack, admin: TestClient) -> None:
    now = time.time()
    for k in range(1, 12):  # Error1 … Error11: k events in the last 24 hours
        _send(stack, f"Error{k}", *(now - 60 * i for i in range(1, k + 1)))
    _send(stack, "Error11", now - 30 * HOUR, now - 31 * HOUR)  # 11 now, 2 before: +9
    _send(stack, "Shrinking", now - 60, *(now - 30 * HOUR - i for i in range(3)))  # 1 now, 3 before
    _send(stack, "Quiet", now - 30 * HOUR)
    stack.digest()
    page = admin.get("/projects/python/trends").text
    _, *rows = _rows(page, "growing")
    got = [(row[0].split(":")[0], row[2], row[3], row[4]) for row in rows]
    expected = [("Error10", "10", "0", "+10"), ("Error11", "11", "2", "+9")]
    expected += [(f"Error{k}", str(k), "0", f"+{k}") for k in range(9, 1, -1)]
    assert got == expected  # top 10 by increase: Error1 (+1), Shrinking and Quiet are left out
    assert re.search(r'<a href="/issues/\d+">Error10: went wrong</a>', page)


def test_new_issues_per_day(stack: Stack, admin: TestClient) -> None:
    now = time.time()
    today = max(now - 6, now // DAY * DAY)  # today even just after midnight
    _send(stack, "TodayOne", today)
    _send(stack, "TodayTwo", today)
    _send(stack, "ThreeDaysAgo", now - 3 * DAY, now - 2)  # first seen three days ago, seen today too
    _send(stack, "LongAgo", now - 40 * DAY, now - 1)  # first seen before the 30 days
    stack.digest()
    page = admin.get("/projects/python/trends").text
    _, *rows = _rows(page, "new-issues")
    days = dict(rows)
    assert len(rows) == 30 and rows[-1][0] == datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    assert days[rows[-1][0]] == "2"
    assert days[datetime.fromtimestamp(now - 3 * DAY, UTC).strftime("%Y-%m-%d")] == "1"
    assert sum(int(count) for _, count in rows) == 3
    bars = _charts(page)[1]
    assert bars["kind"] == "bars" and bars["step"] == DAY and len(bars["x"]) == 30
    assert bars["x"][-1] == now // DAY * DAY and bars["series"][0]["values"][-1] == 2


def test_trends_access(stack: Stack) -> None:
    response = stack.client.get("/projects/python/trends?range=7d", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/projects/python/trends%3Frange%3D7d"
    add_user(stack, "dev@example.com")
    with stack.services.engine.begin() as connection:
        accounts.add_member(connection, "node", "dev@example.com")
    login(stack.client, "dev@example.com")
    hidden, missing = stack.client.get("/projects/python/trends"), stack.client.get("/projects/nope/trends")
    assert hidden.status_code == missing.status_code == 404 and hidden.text == missing.text
    assert stack.client.get("/projects/node/trends").status_code == 200


def test_event_data_is_escaped_and_never_in_chart_data(stack: Stack, admin: TestClient) -> None:
    tags = {key: SCRIPT for key in ("workflow_id", "run_id", "step_id", "tenant", "component")}
    send_ok(stack, exception_event("ValueError", SCRIPT, tags=tags, environment="prod"))
    stack.digest()
    page = admin.get("/projects/python/trends").text
    assert SCRIPT not in page and str(escape(f"ValueError: {SCRIPT}")) in page
    attributes = re.findall(r'data-chart="([^"]*)"', page)
    assert len(attributes) == 2
    for raw in attributes:
        assert "script" not in html.unescape(raw) and "ValueError" not in html.unescape(raw)
        labels = {series["label"] for series in json.loads(html.unescape(raw))["series"]}
        assert labels <= {*LEVELS, "new issues"}
