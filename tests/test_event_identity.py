"""One event per envelope, and event ids that are unique per project only (both backends).

An envelope with several ``event`` items is refused (the digest used to keep the first and count the others as
duplicates of it). The same ``event_id`` in two projects is two events: the REST API finds each by project, and
the global lookup answers 409 naming the projects instead of picking one.
"""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from stackwatch.server.storage.schema import events
from tests.conftest import NODE_KEY, Stack
from tests.support import AUTH, envelope, message_event, new_id, send_ok
from tests.test_web_auth import add_user, login

NODE_AUTH = AUTH.replace("sentry_key=abc123publickey", f"sentry_key={NODE_KEY}")


def _event_item(message: str) -> tuple[dict[str, str], bytes]:
    return {"type": "event"}, orjson.dumps(message_event(message))


@pytest.mark.parametrize(
    ("items", "status"),
    [
        pytest.param(["event", "event"], 400, id="two events"),
        pytest.param(["event", "event", "event"], 400, id="three events"),
        pytest.param(["event", "attachment", "event"], 400, id="two events around an attachment"),
        pytest.param(["event", "attachment", "client_report"], 200, id="one event with other items"),
        pytest.param(["event", "transaction"], 200, id="one event and a transaction"),
    ],
)
def test_an_envelope_carries_at_most_one_event(stack: Stack, items: list[str], status: int) -> None:
    event_id = new_id()
    parts = []
    for index, kind in enumerate(items):
        if kind == "event":
            parts.append(({"type": "event"}, orjson.dumps(message_event(f"event {index}", event_id=event_id))))
        elif kind == "attachment":
            parts.append(({"type": "attachment", "filename": "log.txt"}, b"a log line"))
        elif kind == "client_report":
            discarded = [{"reason": "queue_overflow", "category": "error", "quantity": 1}]
            parts.append(({"type": "client_report"}, orjson.dumps({"discarded_events": discarded})))
        else:
            parts.append(({"type": kind}, orjson.dumps({"type": kind})))
    body = envelope(*parts, header={"event_id": event_id})
    response = stack.client.post("/api/1/envelope/", content=body, headers={"X-Sentry-Auth": AUTH})
    assert response.status_code == status, response.text
    stack.digest()
    stored = stack.api(f"/events/{event_id}")
    if status == 400:
        events_sent = items.count("event")
        reason = f"envelope has {events_sent} event items; an envelope carries at most one event"
        assert response.headers["x-sentry-error"] == reason
        assert stored.status_code == 404, "nothing of a refused envelope is kept"
    else:
        assert stored.status_code == 200 and stored.json()["data"]["logentry"]["message"] == "event 0"


@pytest.fixture
def shared_id(stack: Stack) -> str:
    """An event id sent to the python project and, with another message, to the node project."""
    event_id = new_id()
    send_ok(stack, message_event("from python", event_id=event_id))
    send_ok(stack, message_event("from node", event_id=event_id), project_id=2, auth=NODE_AUTH)
    stack.digest()
    return event_id


def test_an_id_in_two_projects_is_found_in_each_and_is_ambiguous_globally(stack: Stack, shared_id: str) -> None:
    for slug, project_id, message in [("python", 1, "from python"), ("node", 2, "from node")]:
        found = stack.api(f"/projects/{slug}/events/{shared_id}")
        assert found.status_code == 200, found.text
        assert found.json()["project_id"] == project_id and found.json()["data"]["logentry"]["message"] == message
    dashed = f"{shared_id[:8]}-{shared_id[8:12]}-{shared_id[12:16]}-{shared_id[16:20]}-{shared_id[20:]}".upper()
    assert stack.api(f"/projects/node/events/{dashed}").json()["data"]["logentry"]["message"] == "from node"

    ambiguous = stack.api(f"/events/{shared_id}")
    assert ambiguous.status_code == 409, ambiguous.text
    assert ambiguous.json()["projects"] == ["node", "python"]
    assert "node, python" in ambiguous.json()["detail"] and "/projects/{slug}/events/" in ambiguous.json()["detail"]


def test_the_project_lookup_finds_only_that_projects_events(stack: Stack, shared_id: str) -> None:
    only_python = send_ok(stack, message_event("only python"))
    stack.digest()
    unique = stack.api(f"/events/{only_python}")  # an id of one project: the global lookup still finds it
    assert unique.json()["data"]["logentry"]["message"] == "only python"
    assert stack.api(f"/projects/python/events/{only_python}").status_code == 200
    assert stack.api(f"/projects/node/events/{only_python}").status_code == 404
    assert stack.api(f"/projects/nosuch/events/{shared_id}").status_code == 404
    assert stack.api(f"/projects/python/events/{new_id()}").status_code == 404


def test_the_openapi_document_has_the_project_lookup_and_the_conflict(stack: Stack) -> None:
    paths = stack.client.get("/api/v1/openapi.json").json()["paths"]
    assert "get" in paths["/api/v1/projects/{slug}/events/{event_id}"]
    conflict = paths["/api/v1/events/{event_id}"]["get"]["responses"]["409"]
    assert conflict["content"]["application/json"]["schema"]["$ref"].endswith("/EventConflict")


def test_the_issue_page_shows_the_event_of_its_own_project(stack: Stack, shared_id: str) -> None:
    """The dashboard looks events up by issue (``/issues/{id}?event=``), so a shared id is never ambiguous there."""
    add_user(stack, "admin@example.com", admin=True)
    assert login(stack.client, "admin@example.com").status_code == 303
    with stack.services.engine.connect() as connection:
        rows = connection.execute(select(events.c.project_id, events.c.issue_id).where(events.c.event_id == shared_id))
        issue_of_project = {project_id: issue_id for project_id, issue_id in rows}
    for project_id, message, other in [(1, "from python", "from node"), (2, "from node", "from python")]:
        page = stack.client.get(f"/issues/{issue_of_project[project_id]}?event={shared_id}")
        assert page.status_code == 200
        assert message in page.text and other not in page.text
