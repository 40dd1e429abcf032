"""Every captured SDK request is accepted, and the issues it makes are the right ones."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from stackwatch.server.storage.schema import attachments, client_report_counts, events, session_counts
from tests import support
from tests.captures import PYTHON_DIR, by_name, replay_all
from tests.conftest import Stack

PYTHON_EVENT_IDS = {
    "0000": "7def14da5943488b922ba1b8d703ccb7",
    "0001": "cc698682d00a4c4ba12e3778e7603f3d",
    "0002": "c707e72ad3714c37b8311c124971bf96",
    "0003": "71a0251ca2334732beef34c310bbd096",
    "0007": "ed6419e3a2fd4f4583c9c0aa8e3d3ce1",
    "0009": "d39e4602695449dd88a0ea943befd36d",
    "0010": "8b64cdb3708f4aadb5fff99d1df932a6",
    "0011": "44bdf9a398d74cea9b295be39ca45cc6",
    "0012": "637516b06e4f43d3a5d00e56040141e5",
    "0013": "51a6da51610041c1995b18aab943e743",
}


@pytest.fixture
def replayed(stack: Stack) -> Stack:
    replay_all(stack)
    return stack


def python_issues(stack: Stack) -> list[dict]:
    return stack.api("/projects/python/issues", limit=100).json()["data"]


def issue_with_event(stack: Stack, event_id: str) -> dict:
    return stack.api(f"/issues/{support.issue_of(stack, event_id)}").json()


def test_python_fixtures_make_ten_issues(replayed: Stack) -> None:
    issues = python_issues(replayed)
    assert len(issues) == 10
    by_title = {issue["title"].split(":")[0]: issue for issue in issues}
    connection_error = by_title["ConnectionError"]
    assert (connection_error["count"], connection_error["run_count"]) == (3, 3)
    assert (connection_error["workflow_count"], connection_error["user_count"]) == (1, 1)
    assert by_title["MemoryError"]["unhandled"] is True


def test_the_three_workflow_runs_are_one_issue(replayed: Stack) -> None:
    issue_ids = {support.issue_of(replayed, PYTHON_EVENT_IDS[name]) for name in ("0000", "0001", "0002")}
    assert len(issue_ids) == 1
    issue = replayed.api(f"/issues/{issue_ids.pop()}").json()
    assert issue["title"].startswith("ConnectionError: ")
    assert (issue["count"], issue["run_count"], issue["workflow_count"], issue["user_count"]) == (3, 3, 1, 1)
    assert issue["culprit"] == "__main__ in step_http_call"
    assert issue["level"] == "error"
    assert issue["status"] == "unresolved"
    events_page = replayed.api(f"/issues/{issue['id']}/events").json()["data"]
    assert {event["run_id"] for event in events_page} == {"run_0", "run_1", "run_2"}
    assert {event["workflow_id"] for event in events_page} == {"wf_orders"}
    assert {event["component"] for event in events_page} == {"http-executor"}
    assert {event["step_id"] for event in events_page} == {"call-crm"}  # from the workflow context


def test_chained_exception_is_titled_by_the_outermost_and_grouped_by_both(replayed: Stack) -> None:
    issue = issue_with_event(replayed, PYTHON_EVENT_IDS["0003"])
    assert issue["title"] == "ValueError: could not parse payload"
    assert issue["type"] == "ValueError"
    assert issue["count"] == 1

    # The same ValueError with the same frames but without its KeyError cause is another issue.
    alone = support.captured_event(by_name(PYTHON_DIR, "0003"))
    alone["event_id"] = support.new_id()
    alone["exception"]["values"] = alone["exception"]["values"][1:]
    assert alone["exception"]["values"][0]["type"] == "ValueError"
    support.send_ok(replayed, alone)
    replayed.digest()
    assert support.issue_of(replayed, alone["event_id"]) != issue["id"]
    assert len(python_issues(replayed)) == 11

    # While the whole chain again (a new event id) joins the existing issue.
    again = support.captured_event(by_name(PYTHON_DIR, "0003"))
    again["event_id"] = support.new_id()
    support.send_ok(replayed, again)
    replayed.digest()
    assert support.issue_of(replayed, again["event_id"]) == issue["id"]


def test_custom_fingerprint_groups_apart_from_the_default(replayed: Stack) -> None:
    fingerprinted = support.issue_of(replayed, PYTHON_EVENT_IDS["0007"])
    plain = support.captured_event(by_name(PYTHON_DIR, "0007"))
    plain["event_id"] = support.new_id()
    del plain["fingerprint"]
    support.send_ok(replayed, plain)
    same = support.captured_event(by_name(PYTHON_DIR, "0007"))
    same["event_id"] = support.new_id()
    support.send_ok(replayed, same)
    replayed.digest()
    assert support.issue_of(replayed, plain["event_id"]) != fingerprinted
    assert support.issue_of(replayed, same["event_id"]) == fingerprinted
    assert replayed.api(f"/issues/{fingerprinted}").json()["title"].startswith("ZeroDivisionError")


def test_exception_group_is_one_issue(replayed: Stack) -> None:
    issue = issue_with_event(replayed, PYTHON_EVENT_IDS["0009"])
    assert issue["count"] == 1
    stored = replayed.api(f"/events/{PYTHON_EVENT_IDS['0009']}").json()
    types = [value["type"] for value in stored["data"]["exception"]["values"]]
    assert types == ["TypeError", "ValueError", "ExceptionGroup"]
    assert issue["title"].startswith("ExceptionGroup")


def test_transaction_and_check_in_make_no_issue_and_no_event(replayed: Stack) -> None:
    for name in ("0010", "0011"):
        assert support.count(replayed, events, events.c.event_id == PYTHON_EVENT_IDS[name]) == 0
        assert replayed.api(f"/events/{PYTHON_EVENT_IDS[name]}").status_code == 404
    # 0000-0013 minus the transaction and the check-in: twelve events in the Python project.
    assert support.count(replayed, events, events.c.project_id == 1) == 12
    assert support.count(replayed, events, events.c.project_id == 2) == 4


def test_attachment_is_kept(replayed: Stack) -> None:
    with replayed.services.engine.connect() as connection:
        rows = connection.execute(select(attachments)).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.event_id == PYTHON_EVENT_IDS["0012"]
    assert row.project_id == 1
    assert row.filename == "payload.txt"
    assert row.content_type == "text/plain"
    assert row.size == 130
    assert bytes(row.data) == b"payload dump\n" * 10
    issue = issue_with_event(replayed, PYTHON_EVENT_IDS["0012"])
    assert issue["title"] == "with attachment"


def test_unhandled_error_keeps_its_mechanism(replayed: Stack) -> None:
    event_id = PYTHON_EVENT_IDS["0013"]
    issue = issue_with_event(replayed, event_id)
    assert issue["unhandled"] is True
    assert issue["title"] == "MemoryError: worker thread out of memory"
    # The SDK's scope still names the transaction the crash happened under, and a transaction is the culprit
    # before any frame (Sentry's rule); test_summary.py checks the in-app frame (not threading.run) on its own.
    assert issue["culprit"] == "wf_orders"
    stored = replayed.api(f"/events/{event_id}").json()
    assert stored["handled"] is False
    assert stored["data"]["exception"]["values"][0]["mechanism"] == {"type": "threading", "handled": False}
    # Handled errors stay handled.
    assert replayed.api(f"/events/{PYTHON_EVENT_IDS['0000']}").json()["handled"] is True
    assert issue_with_event(replayed, PYTHON_EVENT_IDS["0000"])["unhandled"] is False


def test_node_fixtures_make_four_issues(replayed: Stack) -> None:
    issues = replayed.api("/projects/node/issues").json()["data"]
    assert len(issues) == 4
    titles = {issue["title"] for issue in issues}
    assert "Error: outer" in titles
    assert "Orchestrator lost lease on run_77" in titles
    assert any(title.startswith("TypeError: Cannot read properties of undefined") for title in titles)
    assert any(title.startswith("SyntaxError") for title in titles)
    warning = next(issue for issue in issues if issue["title"] == "Orchestrator lost lease on run_77")
    assert warning["level"] == "warning"


def test_node_sessions_and_client_reports_are_counted(replayed: Stack) -> None:
    with replayed.services.engine.connect() as connection:
        sessions = {
            row.status: row
            for row in connection.execute(select(session_counts).where(session_counts.c.project_id == 2))
        }
        reports = connection.execute(select(client_report_counts)).all()
    assert {status: row.count for status, row in sessions.items()} == {"started": 1, "exited": 1}
    assert {(row.release, row.environment) for row in sessions.values()} == {("meshhook-web@2.0.1", "production")}
    assert [(r.project_id, r.reason, r.category, r.count) for r in reports] == [(2, "event_processor", "error", 2)]
    assert reports[0].hour % 3600 == 0


def test_replaying_everything_twice_changes_nothing(replayed: Stack) -> None:
    before = [(issue["id"], issue["count"]) for issue in python_issues(replayed)]
    replay_all(replayed)
    after = [(issue["id"], issue["count"]) for issue in python_issues(replayed)]
    assert sorted(after) == sorted(before)
    assert support.count(replayed, events) == 16
