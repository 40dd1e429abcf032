"""``stackwatch seed``: synthetic data that the REST API shows as consistently as the digest's own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from stackwatch.cli import main
from stackwatch.server.digest.items import hour_of
from stackwatch.server.storage.schema import events, project_hourly
from tests.conftest import Stack

EVENTS = 2_000
ISSUES = 50
DAYS = 2


@pytest.fixture
def seeded(stack: Stack, database_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The test stack's "python" project seeded through the command, as a user runs it."""
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    args = ["seed", "--events", str(EVENTS), "--issues", str(ISSUES), "--project", "python", "--days", str(DAYS)]
    result = runner.invoke(main, [*args, "--data-dir", str(tmp_path / "data"), "--database-url", database_url])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"{ISSUES} issues, {EVENTS:,} events" in result.output
    yield stack


def all_issues(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = stack.api("/projects/python/issues", limit=20, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        found += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


def test_seeded_issues_and_counts_add_up(seeded: Stack) -> None:
    issues = all_issues(seeded)
    assert len(issues) == ISSUES
    assert sum(issue["count"] for issue in issues) == EVENTS
    counts = sorted((issue["count"] for issue in issues), reverse=True)
    assert counts[0] > 10 * counts[-1]  # skewed: a few big issues and a long tail
    assert {issue["status"] for issue in issues} <= {"unresolved", "resolved", "ignored"}
    by_events = [issue["count"] for issue in all_issues(seeded, sort="events")]
    assert by_events == counts


def test_an_issues_series_facets_and_events_agree(seeded: Stack) -> None:
    issue = all_issues(seeded, sort="events")[0]
    detail = seeded.api(f"/issues/{issue['id']}", hours=DAYS * 24 + 1).json()
    assert sum(point["count"] for point in detail["hourly"]) == issue["count"]
    facets = {facet["key"]: facet for facet in detail["tags"]}
    for key in ("component", "workflow_id", "run_id", "step_id", "tenant", "level", "environment", "release"):
        assert facets[key]["total"] == issue["count"], key
    assert len(facets["component"]["values"]) == 1
    assert 0 < issue["run_count"] <= issue["count"] and 0 < issue["workflow_count"] <= 3
    assert issue["first_seen"] <= issue["last_seen"] and issue["last_release"] is not None

    page = seeded.api(f"/issues/{issue['id']}/events", limit=5).json()
    assert len(page["data"]) == 5 and page["next_cursor"]
    summary = page["data"][0]
    event = seeded.api(f"/events/{summary['event_id']}").json()
    assert event["issue_id"] == issue["id"] and event["run_id"] == summary["run_id"]
    data = event["data"]
    assert data["exception"]["values"][0]["type"] == issue["type"]
    assert 3 <= len(data["exception"]["values"][0]["stacktrace"]["frames"]) <= 5
    assert data["tags"]["workflow_id"] == summary["workflow_id"]
    run = seeded.api(f"/runs/{summary['run_id']}/events").json()
    assert summary["event_id"] in {e["event_id"] for e in run["data"]}


def test_filters_find_consistent_subsets(seeded: Stack) -> None:
    issues = all_issues(seeded)
    detail = seeded.api(f"/issues/{issues[0]['id']}").json()
    facets = {facet["key"]: facet["values"][0]["value"] for facet in detail["tags"]}
    for key in ("component", "workflow_id", "environment", "release"):
        matching = all_issues(seeded, **{key: facets[key]})
        assert 0 < len(matching) <= ISSUES, key
        assert issues[0]["id"] in {issue["id"] for issue in matching}
        for issue in matching[:5]:  # the few values of these keys all fit in a facet's top 10
            tags = seeded.api(f"/issues/{issue['id']}").json()["tags"]
            assert facets[key] in {v["value"] for f in tags if f["key"] == key for v in f["values"]}, key
    # Every issue comes from exactly one component.
    assert sum(len(all_issues(seeded, component=c)) for c in ("api", "orchestrator", "http-executor")) == ISSUES
    for level in ("error", "warning"):
        assert all(issue["level"] == level for issue in all_issues(seeded, level=level))
    resolved = all_issues(seeded, status="resolved")
    assert all(issue["resolved_at"] for issue in resolved)
    word = issues[0]["type"]
    assert issues[0]["id"] in {issue["id"] for issue in all_issues(seeded, query=word.lower())}


def test_seed_refuses_an_unknown_project(stack: Stack, database_url: str, tmp_path: Path) -> None:
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("STACKWATCH_")})
    args = ["seed", "--events", "10", "--issues", "2", "--project", "nope", "--database-url", database_url]
    result = runner.invoke(main, [*args, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "no project 'nope'" in result.output
    assert all_issues(stack) == []


def test_project_hourly_matches_the_seeded_events(seeded: Stack) -> None:
    """The trends page's counts per hour and level are the seeded events' own, as the digest would keep them."""
    with seeded.services.engine.connect() as connection:
        stored = connection.execute(
            select(project_hourly.c.project_id, project_hourly.c.hour, project_hourly.c.level, project_hourly.c.count)
        ).all()
        expected: dict[tuple[int, int, str], int] = {}
        for project_id, stamp, level in connection.execute(
            select(events.c.project_id, events.c.timestamp, events.c.level)
        ):
            key = (project_id, hour_of(stamp), level)
            expected[key] = expected.get(key, 0) + 1
        levels = connection.execute(select(func.count(func.distinct(events.c.level)))).scalar_one()
    assert {(p, h, level): n for p, h, level, n in stored} == expected
    assert sum(expected.values()) == EVENTS and levels > 1
