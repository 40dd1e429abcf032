"""Moving a project from one grouping version to another: no issue is split, new issues get the new version.

The events are the same browser error in three browsers' stack formats. Version 1 made one issue per browser;
version 2 makes one issue of all three. While the project moves, each issue version 1 made keeps its events,
an error first seen during the move gets a version-2 issue, and a project fingerprint rule still decides.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from stackwatch.server.digest.grouping import grouping_hash
from stackwatch.server.storage.schema import grouping_hashes, issues, projects
from tests import support
from tests.conftest import Stack
from tests.support import new_id, normalized

BUNDLE = "https://app.example.com/static/js/main.3f2a1c9e.js"


def browser_error(browser: str, stamp: float, *, kind: str = "TypeError", function: str = "loadUser") -> dict[str, Any]:
    """A TypeError thrown in ``function`` called from a click handler, as one browser's stack parser reports it."""
    owner, handler, value = {
        "chrome": ("Object.", "HTMLButtonElement.onClick", "Cannot read properties of undefined (reading 'id')"),
        "firefox": ("", "onClick", "user is undefined"),
        "safari": ("", "onClick", "undefined is not an object (evaluating 'user.id')"),
    }[browser]
    frames = [
        {"filename": BUNDLE, "abs_path": BUNDLE, "function": handler, "lineno": 1, "colno": 48213, "in_app": True},
        {
            "filename": BUNDLE,
            "abs_path": BUNDLE,
            "function": f"{owner}{function}",
            "lineno": 1,
            "colno": 9120,
            "in_app": True,
        },
    ]
    if browser == "safari":  # Safari lists the built-in the handler went through
        native = {"filename": "[native code]", "abs_path": "[native code]", "function": "forEach", "in_app": True}
        frames.insert(1, native)
    return {
        "event_id": new_id(),
        "platform": "javascript",
        "level": "error",
        "timestamp": stamp,
        "sdk": {"name": "sentry.javascript.browser", "version": "8.55.0"},
        "exception": {"values": [{"type": kind, "value": value, "stacktrace": {"frames": frames}}]},
    }


def hashes(event: dict[str, Any], version: int) -> str:
    return grouping_hash(normalized(event), version)


def on_version_1(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(
            update(projects)
            .where(projects.c.slug == "python")
            .values(grouping_version=1, grouping_previous=None, grouping_transition_until=None)
        )


def patch(stack: Stack, **change: Any) -> httpx.Response:
    return stack.client.patch(
        "/api/v1/projects/python", json=change, headers={"Authorization": f"Bearer {stack.token}"}
    )


def send_all(stack: Stack, events: list[dict[str, Any]]) -> list[int]:
    ids = [support.send_ok(stack, event) for event in events]
    stack.digest()
    return [support.issue_of(stack, event_id) for event_id in ids]


def issue(stack: Stack, issue_id: int) -> Any:
    with stack.services.engine.connect() as connection:
        return connection.execute(select(issues).where(issues.c.id == issue_id)).one()


def test_the_browsers_are_one_issue_under_version_2_and_three_under_version_1() -> None:
    """The premise of the tests below: version 1 splits the browsers, version 2 merges them."""
    now = time.time()
    chrome, firefox, safari = (browser_error(b, now) for b in ("chrome", "firefox", "safari"))
    assert len({hashes(e, 1) for e in (chrome, firefox, safari)}) == 3
    assert len({hashes(e, 2) for e in (chrome, firefox, safari)}) == 1


def test_moving_to_version_2_splits_no_issue_and_gives_new_issues_version_2(stack: Stack) -> None:
    on_version_1(stack)
    now = time.time()
    python = support.exception_event(timestamp=now - 50)
    chrome, firefox, python_issue = send_all(
        stack, [browser_error("chrome", now - 60), browser_error("firefox", now - 55), python]
    )
    assert len({chrome, firefox, python_issue}) == 3
    assert {issue(stack, i).grouping_version for i in (chrome, firefox, python_issue)} == {1}

    answer = patch(stack, grouping_version=2)
    assert answer.status_code == 200, answer.text
    assert answer.json()["grouping_version"] == 2
    assert answer.json()["grouping_transition"]["from_version"] == 1

    new_error = browser_error("chrome", now - 5, kind="RangeError", function="paginate")
    landed = send_all(
        stack,
        [
            browser_error("chrome", now - 40),
            browser_error("firefox", now - 30),
            {**support.exception_event(), "timestamp": now - 25},
            browser_error("safari", now - 20),  # a hash version 1 never saw: the version-2 hash finds chrome's
            new_error,
        ],
    )
    assert landed[:3] == [chrome, firefox, python_issue]
    # Safari's version-1 hash is new; its version-2 hash is the issue that holds it (version 2 hashes what its
    # normalization leaves unchanged as version 1 did, so that may be the issue of a browser version 1 saw).
    assert landed[3] == holder(stack, hashes(browser_error("safari", now), 2)) in (chrome, firefox)
    created = landed[4]
    assert created not in (chrome, firefox, python_issue)
    assert support.issue_count(stack) == 4
    made = issue(stack, created)
    assert made.grouping_version == 2 and made.grouping_hash == hashes(new_error, 2)
    counts = {i: issue(stack, i).event_count for i in (chrome, firefox, python_issue)}
    assert counts[python_issue] == 2 and counts[chrome] + counts[firefox] == 5
    assert min(counts[chrome], counts[firefox]) >= 2  # each kept its own browser's events


def holder(stack: Stack, hash_: str) -> int | None:
    """The issue a hash finds."""
    with stack.services.engine.connect() as connection:
        found = connection.execute(select(grouping_hashes.c.issue_id).where(grouping_hashes.c.hash == hash_))
        return found.scalar()


def test_after_the_move_events_go_by_their_version_2_hash(stack: Stack) -> None:
    on_version_1(stack)
    now = time.time()
    chrome, firefox = send_all(stack, [browser_error("chrome", now - 60), browser_error("firefox", now - 50)])
    assert patch(stack, grouping_version=2).status_code == 200
    assert send_all(stack, [browser_error("chrome", now - 40)]) == [chrome]
    shared = holder(stack, hashes(browser_error("chrome", now), 2))
    assert shared in (chrome, firefox)  # every event of either issue now finds it by its version-2 hash
    with stack.services.engine.begin() as connection:
        connection.execute(update(projects).values(grouping_transition_until=time.time() - 1))
    assert patch(stack).json()["grouping_transition"] is None
    # Version 1 kept the browsers apart; after the move version 2 alone decides: the issue that has the hash.
    later = [browser_error(b, now - 30 + n) for n, b in enumerate(("chrome", "firefox", "safari"))]
    assert send_all(stack, later) == [shared] * 3
    assert support.issue_count(stack) == 2


@pytest.mark.parametrize("rule", ["error.type:TypeError -> frontend", "error.type:TypeError -> {{ default }} frontend"])
def test_a_fingerprint_rule_splits_events_off_during_the_move(stack: Stack, rule: str) -> None:
    """With ``{{ default }}`` or without: the version-1 hash would take the event back to the old issue."""
    on_version_1(stack)
    now = time.time()
    [chrome] = send_all(stack, [browser_error("chrome", now - 60)])
    answer = patch(stack, grouping_version=2, fingerprint_rules=rule)
    assert answer.status_code == 200, answer.text
    [ruled] = send_all(stack, [browser_error("chrome", now - 50)])
    assert ruled != chrome
    assert send_all(stack, [browser_error("safari", now - 40)]) == [ruled]


def test_an_sdk_fingerprint_keeps_its_issue_across_the_move(stack: Stack) -> None:
    on_version_1(stack)
    now = time.time()
    [before] = send_all(stack, [{**browser_error("chrome", now - 60), "fingerprint": ["checkout-failed"]}])
    assert patch(stack, grouping_version=2).status_code == 200
    with stack.services.engine.begin() as connection:
        connection.execute(update(projects).values(grouping_transition_until=time.time() - 1))
    assert send_all(stack, [{**browser_error("safari", now - 50), "fingerprint": ["checkout-failed"]}]) == [before]


def test_bad_grouping_settings_are_refused_and_change_nothing(stack: Stack) -> None:
    before = patch(stack).json()
    for change, message in (
        ({"grouping_version": 99}, "grouping_version must be one of"),
        ({"grouping_version": True}, ""),
        ({"stacktrace_rules": "path:**/vendor/** +sideways"}, "line 1"),
        ({"fingerprint_rules": "# why\nerror.type:Timeout"}, "line 2"),
        ({"stacktrace_rules": "x" * 70_000}, "at most"),
    ):
        answer = patch(stack, **change)
        assert answer.status_code == 422, (change, answer.text)
        assert message in answer.text
    assert patch(stack).json() == before


def test_rules_are_kept_as_written_and_shown(stack: Stack) -> None:
    rules = "# vendored code is not ours\npath:**/vendor/** -app\nfunction:std::* -group"
    answer = patch(stack, stacktrace_rules=rules, fingerprint_rules="error.type:DatabaseUnavailable -> database-down")
    assert answer.status_code == 200, answer.text
    shown = stack.api("/projects").json()[0]
    assert shown["stacktrace_rules"] == rules
    assert shown["fingerprint_rules"] == "error.type:DatabaseUnavailable -> database-down"
    assert patch(stack, stacktrace_rules="").json()["stacktrace_rules"] == ""
