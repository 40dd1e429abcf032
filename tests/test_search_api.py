"""The search syntax through the REST API's ``query`` (both backends): a table of queries and the issues they find,
bad queries and their 400s, and saved searches."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import issues
from tests import support
from tests.conftest import Stack
from tests.support import exception_event, frame, message_event

NOW = time.time()
WORKFLOW_A = {"component": "api", "workflow_id": "wf_a", "step_id": "s1", "tenant": "acme", "region": "eu"}


@dataclass
class People:
    ops: int  # the user whose token searches (``assigned:me``)
    dev: int
    token: str  # ops's API token
    names: dict[int, str]  # issue id: its name in the tables below


def _connection_error(run: str, user: dict[str, str], hours: float) -> dict[str, Any]:
    frames = [frame("call_hook", "    return client.post(url)"), frame("post", "    raise ConnectionError(url)")]
    return exception_event(
        "ConnectionError",
        "refused",
        frames,
        timestamp=NOW - hours * 3600,
        environment="production",
        release="web app@1.2",
        tags={**WORKFLOW_A, "run_id": run},
        user=user,
    )


def _patch(stack: Stack, issue_id: int, status: str) -> None:
    response = stack.client.patch(
        f"/api/v1/issues/{issue_id}", json={"status": status}, headers={"Authorization": f"Bearer {stack.token}"}
    )
    assert response.status_code == 200, response.text


def _regress(stack: Stack, event: dict[str, Any]) -> int:
    """An issue resolved, then seen again: regressed."""
    event_id = support.send_ok(stack, event)
    stack.digest()
    issue_id = support.issue_of(stack, event_id)
    _patch(stack, issue_id, "resolved")
    support.send_ok(stack, {**event, "event_id": support.new_id(), "timestamp": NOW})
    stack.digest()
    return issue_id


def build(stack: Stack) -> People:
    """Five issues of the Python project.

    ==========  =======  ==========  =======  ============  ===========  ================  ==========  ========
    name        level    status      env      release       component    workflow/run      user        assignee
    ==========  =======  ==========  =======  ============  ===========  ================  ==========  ========
    connection  error    unresolved  prod     "web app@1.2" api          wf_a r1 r2 s1     id:42,      ops
                                                                         acme region=eu    email:a@b.c
    type_error  warning  resolved    staging  2.0           worker       wf_b r3 s2        username:   -
                                                                         globex region=us  bob
    disk        fatal    ignored     prod     1.0           orchestrator -                 -           dev
    regressed   error    unresolved  -        -             -            -                 ip:10.0.0.1 -
                                                                                           (regressed)
    reresolved  error    resolved    prod     -             -            region=eu         -           -
                                                                                           (regressed, resolved again)
    ==========  =======  ==========  =======  ============  ===========  ================  ==========  ========
    """
    with stack.services.engine.begin() as connection:
        ops = accounts.create_user(connection, "ops@example.com", "a long password 1")
        dev = accounts.create_user(connection, "Dev@Example.com", "a long password 2")
        token = accounts.create_token(connection, "ops", user_id=ops)
    sent = {
        "connection": support.send_ok(stack, _connection_error("r1", {"id": "42"}, 3)),
        "type_error": support.send_ok(
            stack,
            exception_event(
                "TypeError",
                "None is not callable",
                timestamp=NOW - 4 * 3600,
                level="warning",
                environment="staging",
                release="2.0",
                tags={"component": "worker", "workflow_id": "wf_b", "run_id": "r3", "step_id": "s2"}
                | {"tenant": "globex", "region": "us"},
                user={"username": "bob"},
            ),
        ),
        "disk": support.send_ok(
            stack,
            message_event(
                "Disk full on /var/lib/data",
                level="fatal",
                timestamp=NOW - 2 * 3600,
                environment="production",
                release="1.0",
                tags={"component": "orchestrator"},
            ),
        ),
    }
    support.send_ok(stack, _connection_error("r2", {"email": "a@b.c"}, 1))
    stack.digest()
    ids = {name: support.issue_of(stack, event_id) for name, event_id in sent.items()}
    ids["regressed"] = _regress(
        stack,
        exception_event(
            "KeyError",
            "'missing'",
            [frame("lookup", "    table[key]")],
            timestamp=NOW - 600,
            user={"ip_address": "10.0.0.1"},
        ),
    )
    ids["reresolved"] = _regress(
        stack,
        exception_event(
            "OSError",
            "disk quota exceeded",
            [frame("write", "    fh.write(data)")],
            timestamp=NOW - 500,
            environment="production",
            tags={"region": "eu"},
        ),
    )
    _patch(stack, ids["reresolved"], "resolved")
    _patch(stack, ids["type_error"], "resolved")
    _patch(stack, ids["disk"], "ignored")
    with stack.services.engine.begin() as connection:
        connection.execute(update(issues).where(issues.c.id == ids["connection"]).values(assignee_id=ops))
        connection.execute(update(issues).where(issues.c.id == ids["disk"]).values(assignee_id=dev))
    return People(ops, dev, token, {issue_id: name for name, issue_id in ids.items()})


@pytest.fixture
def people(stack: Stack) -> People:
    return build(stack)


def search(stack: Stack, token: str, query: str, **params: Any) -> httpx.Response:
    return stack.client.get(
        "/api/v1/projects/python/issues",
        params={"query": query, **params},
        headers={"Authorization": f"Bearer {token}"},
    )


ALL = {"connection", "type_error", "disk", "regressed", "reresolved"}
QUERIES: list[tuple[str, set[str]]] = [
    ("", ALL),
    ("   ", ALL),
    ("is:unresolved", {"connection", "regressed"}),
    ("is:resolved", {"type_error", "reresolved"}),
    ("is:ignored", {"disk"}),
    ("is:resolved,ignored", {"type_error", "reresolved", "disk"}),
    ("-is:unresolved", {"type_error", "reresolved", "disk"}),
    ("is:assigned", {"connection", "disk"}),
    ("is:unassigned", {"type_error", "regressed", "reresolved"}),
    ("is:regressed", {"regressed"}),
    ("-is:regressed", ALL - {"regressed"}),
    ("IS:Unresolved", {"connection", "regressed"}),  # field names and fixed values in any case
    ("level:error", {"connection", "regressed", "reresolved"}),
    ("level:error,fatal", {"connection", "regressed", "reresolved", "disk"}),
    ("-level:error", {"type_error", "disk"}),
    ("level:warning is:resolved", {"type_error"}),
    ("environment:production", {"connection", "disk", "reresolved"}),
    ("environment:staging,production", {"connection", "disk", "reresolved", "type_error"}),
    ("-environment:production", {"type_error", "regressed"}),
    ('release:"web app@1.2"', {"connection"}),
    ("release:web app@1.2", set()),  # unquoted, the value ends at the space: release "web", text "app@1.2"
    ('release:"web app@1.2",2.0', {"connection", "type_error"}),
    ("release:1.0", {"disk"}),
    ("component:api", {"connection"}),
    ("component:worker,orchestrator", {"type_error", "disk"}),
    ("workflow:wf_a", {"connection"}),
    ("workflow_id:wf_b", {"type_error"}),
    ("run:r1", {"connection"}),
    ("run:r2", {"connection"}),
    ("run:r3", {"type_error"}),
    ("run:r1,r3", {"connection", "type_error"}),
    ("run:nowhere", set()),
    ("step:s1", {"connection"}),
    ("step:s2", {"type_error"}),
    ("tenant:acme", {"connection"}),
    ("-tenant:acme", ALL - {"connection"}),
    ("user:42", {"connection"}),
    ("user:id:42", {"connection"}),
    ("user:a@b.c", {"connection"}),
    ("user:email:a@b.c", {"connection"}),
    ("user:username:42", set()),  # the kind named: only that kind
    ("user:bob", {"type_error"}),
    ("user:10.0.0.1", {"regressed"}),
    ("user:43", set()),
    ("assigned:me", {"connection"}),
    ("assigned:ops@example.com", {"connection"}),
    ("assigned:DEV@example.com", {"disk"}),
    ("assigned:none", {"type_error", "regressed", "reresolved"}),
    ("assigned:me,none", ALL - {"disk"}),
    ("-assigned:me", ALL - {"connection"}),  # the unassigned too
    ("-assigned:none", {"connection", "disk"}),
    ("has:release", {"connection", "type_error", "disk"}),
    ("-has:release", {"regressed", "reresolved"}),
    ("has:environment", ALL - {"regressed"}),
    ("has:user", {"connection", "type_error", "regressed"}),
    ("has:workflow", {"connection", "type_error"}),
    ("has:run", {"connection", "type_error"}),
    ("has:tenant", {"connection", "type_error"}),
    ("has:step", {"connection", "type_error"}),
    ("has:assignee", {"connection", "disk"}),
    ("has:region", {"connection", "type_error", "reresolved"}),
    ("has:nothing", set()),
    ("region:eu", {"connection", "reresolved"}),
    ("region:eu,us", {"connection", "reresolved", "type_error"}),
    ("-region:eu", {"type_error", "disk", "regressed"}),
    ("tags[region]:us", {"type_error"}),
    ("region:EU", set()),  # tag values as they are
    ("disk", {"disk", "reresolved"}),  # free text: title or culprit, any case
    ("DISK full", {"disk"}),
    ('"disk full"', {"disk"}),
    ("disk -full", {"reresolved"}),
    ('-"disk full"', ALL - {"disk"}),
    ("app.worker in post", {"connection"}),  # the culprit
    ("refused level:error app.worker", {"connection"}),
    ("%", set()),
    ("_", set()),
    ("\"KeyError: 'missing'\"", {"regressed"}),
    ("KeyError: 'missing'", {"regressed"}),  # a title pasted as it is: ``KeyError:`` is no field
    ("is:unresolved level:error environment:production component:api", {"connection"}),
    ("is:unresolved -assigned:me", {"regressed"}),
    ("level:error has:release -has:tenant", set()),
]


def test_queries_find_the_expected_issues(stack: Stack, people: People) -> None:
    for query, expected in QUERIES:
        response = search(stack, people.token, query)
        assert response.status_code == 200, (query, response.text)
        found = [people.names[issue["id"]] for issue in response.json()["data"]]
        assert set(found) == expected and len(found) == len(expected), (query, found)


def test_the_query_combines_with_the_other_parameters(stack: Stack, people: People) -> None:
    found = search(stack, people.token, "level:error", status="unresolved", environment="production").json()["data"]
    assert [people.names[issue["id"]] for issue in found] == ["connection"]
    pages = [search(stack, people.token, "level:error,fatal", limit=2)]
    pages.append(search(stack, people.token, "level:error,fatal", limit=2, cursor=pages[0].json()["next_cursor"]))
    seen = [people.names[issue["id"]] for page in pages for issue in page.json()["data"]]
    assert sorted(seen) == sorted({"connection", "regressed", "reresolved", "disk"})


BAD_QUERIES = [
    (
        "is:bogus",
        "unknown is: value 'bogus'; use one of unresolved, resolved, ignored, assigned, unassigned, regressed"
        " (at position 4)",
    ),
    ("level:error is:fixed", "unknown is: value 'fixed'"),
    ("level:critical", "unknown level 'critical'; use one of fatal, error, warning, info, debug (at position 7)"),
    ("level:error,", "empty value for level: (at position 13)"),
    ('release:"web app', "unclosed quote (at position 9)"),
    ('"unclosed', "unclosed quote (at position 1)"),
    ("release:", "empty value for release:; to search for text with a colon, quote it (at position 9)"),
    ("is: refused", "empty value for is:"),  # a field's colon with nothing after it is still refused
    ('level:"error"x', "a space or a comma must follow the closing quote of level: (at position 14)"),
    ('""', "empty quoted text (at position 1)"),
    ("assigned:nobody@example.com", "assigned: no user 'nobody@example.com' (at position 1)"),
    ("is:unresolved -assigned:bob", "assigned: no user 'bob' (at position 15)"),
    ('has:"a b"', "has: needs a field name or a tag key, not 'a b'"),
    ("x" * 2001, "the search is longer than 2000 characters"),
    (" ".join(["a:b"] * 51), "more than 50 terms"),
]


def test_bad_queries_are_400_with_the_problem_and_its_position(stack: Stack, people: People) -> None:
    for query, message in BAD_QUERIES:
        response = search(stack, people.token, query)
        assert response.status_code == 400, (query, response.text)
        assert response.json()["detail"].startswith("invalid search: "), query
        assert message in response.json()["detail"], (query, response.json())


def test_assigned_me_needs_a_token_of_a_user(stack: Stack, people: People) -> None:
    response = search(stack, stack.token, "assigned:me")  # the fixture's token belongs to nobody
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "invalid search: assigned:me needs a user, and this API token belongs to none (at position 1)"
    )
    assert search(stack, stack.token, "assigned:none").status_code == 200


# --- saved searches ---------------------------------------------------------------------------------------------


def saved(stack: Stack, token: str, method: str = "GET", path: str = "", **kwargs: Any) -> httpx.Response:
    return stack.client.request(
        method,
        f"/api/v1/projects/python/saved-searches{path}",
        headers={"Authorization": f"Bearer {token}"},
        **kwargs,
    )


def test_saved_searches_are_created_listed_and_deleted(stack: Stack, people: People) -> None:
    assert saved(stack, people.token).json() == []
    created = saved(stack, people.token, "POST", json={"name": " Mine ", "query": "assigned:me is:unresolved "})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["query"]) == ("Mine", "assigned:me is:unresolved")
    assert body["created_at"].endswith("Z") and isinstance(body["id"], int)
    other = saved(stack, people.token, "POST", json={"name": "A first", "query": 'release:"web app@1.2"'}).json()
    assert [entry["name"] for entry in saved(stack, people.token).json()] == ["A first", "Mine"]  # by name
    # The saved query runs as it reads.
    found = search(stack, people.token, body["query"]).json()["data"]
    assert [people.names[issue["id"]] for issue in found] == ["connection"]

    assert saved(stack, people.token, "DELETE", f"/{body['id']}").status_code == 204
    assert saved(stack, people.token, "DELETE", f"/{body['id']}").status_code == 404
    assert [entry["id"] for entry in saved(stack, people.token).json()] == [other["id"]]


def test_saved_searches_are_each_users_own(stack: Stack, people: People) -> None:
    mine = saved(stack, people.token, "POST", json={"name": "Mine", "query": "level:error"}).json()
    with stack.services.engine.begin() as connection:
        dev_token = accounts.create_token(connection, "dev", user_id=people.dev)
    assert saved(stack, dev_token).json() == []
    assert saved(stack, dev_token, "DELETE", f"/{mine['id']}").status_code == 404
    assert saved(stack, dev_token, "POST", json={"name": "Mine", "query": "level:fatal"}).status_code == 201
    assert [entry["query"] for entry in saved(stack, people.token).json()] == ["level:error"]
    node = stack.client.get("/api/v1/projects/node/saved-searches", headers={"Authorization": f"Bearer {people.token}"})
    assert node.json() == []  # per project too


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "Broken", "query": "is:bogus"}, 400, "the search is not valid: unknown is: value 'bogus'"),
        ({"name": "Broken", "query": 'release:"x'}, 400, "unclosed quote (at position 9)"),
        ({"name": "Nobody", "query": "assigned:nobody@example.com"}, 400, "assigned: no user"),
        ({"name": "", "query": "level:error"}, 422, "a name of 1 to 200 characters"),
        ({"name": "   ", "query": "level:error"}, 422, "a name of 1 to 200 characters"),
        ({"name": "n" * 201, "query": "level:error"}, 422, "a name of 1 to 200 characters"),
        ({"name": "Taken", "query": "level:fatal"}, 409, "you already have a saved search named 'Taken'"),
        ({"name": " Taken", "query": "level:fatal"}, 409, "you already have a saved search named 'Taken'"),
    ],
)
def test_saved_searches_refuse_what_cannot_be_saved(
    stack: Stack, people: People, body: dict[str, str], status: int, message: str
) -> None:
    assert saved(stack, people.token, "POST", json={"name": "Taken", "query": "level:error"}).status_code == 201
    response = saved(stack, people.token, "POST", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert len(saved(stack, people.token).json()) == 1


def test_saved_searches_need_a_token_of_a_user(stack: Stack, people: People) -> None:
    for method, path, kwargs in [
        ("GET", "", {}),
        ("POST", "", {"json": {"name": "x", "query": ""}}),
        ("DELETE", "/1", {}),
    ]:
        response = saved(stack, stack.token, method, path, **kwargs)
        assert response.status_code == 403, (method, response.text)
        assert response.json()["detail"] == "saved searches are a user's: this API token belongs to no user"


def test_saved_searches_of_an_unknown_project_or_id(stack: Stack, people: People) -> None:
    headers = {"Authorization": f"Bearer {people.token}"}
    assert stack.client.get("/api/v1/projects/nowhere/saved-searches", headers=headers).status_code == 404
    for search_id in ("0", "-1", str(2**63), str(2**70)):
        assert saved(stack, people.token, "DELETE", f"/{search_id}").status_code == 404, search_id
    assert saved(stack, people.token, "DELETE", "/x").status_code == 422
    bad_body = saved(stack, people.token, "POST", json={"name": "x", "query": "", "extra": 1})
    assert bad_body.status_code == 422


def test_a_read_only_token_may_list_but_not_save(stack: Stack, people: People) -> None:
    with stack.services.engine.begin() as connection:
        reader = accounts.create_token(connection, "reader", user_id=people.ops, scope="read")
    assert saved(stack, reader).status_code == 200
    assert saved(stack, reader, "POST", json={"name": "x", "query": ""}).status_code == 403
