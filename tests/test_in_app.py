"""Which frames are the application's: the SDK's flag, else the built-in guesses, then the project's rules.

The digest writes the answer into the stored frames, so the culprit and the event page agree with grouping.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from stackwatch.server.storage.schema import projects
from tests import support
from tests.conftest import Stack
from tests.support import new_id


def node_error() -> dict[str, Any]:
    """A Node error thrown inside a dependency called from the app, with no in_app flags (an older SDK)."""
    frames = [
        {"filename": "/srv/app/src/server.js", "function": "handle", "lineno": 12, "colno": 5},
        {"filename": "/srv/app/vendor/billing/charge.js", "function": "charge", "lineno": 40, "colno": 9},
        {"filename": "/srv/app/node_modules/pg/lib/client.js", "function": "Client.query", "lineno": 511, "colno": 3},
    ]
    return {
        "event_id": new_id(),
        "platform": "node",
        "exception": {"values": [{"type": "Error", "value": "connection refused", "stacktrace": {"frames": frames}}]},
    }


def stored_frames(stack: Stack, event_id: str) -> list[dict[str, Any]]:
    event = stack.api(f"/events/{event_id}").json()
    return list(event["data"]["exception"]["values"][0]["stacktrace"]["frames"])


def test_guessed_flags_are_stored_and_make_the_culprit(stack: Stack) -> None:
    event_id = support.send_ok(stack, node_error())
    stack.digest()
    assert [frame.get("in_app") for frame in stored_frames(stack, event_id)][-1] is False  # node_modules
    issue = stack.api(f"/issues/{support.issue_of(stack, event_id)}").json()
    assert (
        issue["culprit"] == "charge(/srv/app/vendor/billing/charge.js)"
        or issue["culprit"] == "handle(/srv/app/src/server.js)"
    )
    assert "node_modules" not in issue["culprit"]


def test_a_project_rule_moves_a_frame_out_of_the_app(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(
            update(projects).where(projects.c.slug == "python").values(stacktrace_rules="path:**/vendor/** -app")
        )
    event_id = support.send_ok(stack, node_error())
    stack.digest()
    flags = [frame.get("in_app") for frame in stored_frames(stack, event_id)]
    assert flags[1:] == [False, False]
    assert (
        stack.api(f"/issues/{support.issue_of(stack, event_id)}").json()["culprit"] == "handle(/srv/app/src/server.js)"
    )


def test_the_sdks_flag_is_kept_when_no_rule_says_otherwise(stack: Stack) -> None:
    event = node_error()
    for frame in event["exception"]["values"][0]["stacktrace"]["frames"]:
        frame["in_app"] = frame["function"] == "charge"
    event_id = support.send_ok(stack, event)
    stack.digest()
    assert [frame["in_app"] for frame in stored_frames(stack, event_id)] == [False, True, False]
    assert stack.api(f"/issues/{support.issue_of(stack, event_id)}").json()["culprit"] == (
        "charge(/srv/app/vendor/billing/charge.js)"
    )
