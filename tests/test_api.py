"""The REST API (/api/v1), health, readiness and metrics."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from stackwatch.server.storage.schema import api_tokens, issue_tags
from tests import support
from tests.conftest import NODE_KEY, PYTHON_KEY, Stack
from tests.support import exception_event, frame, message_event

NOW = time.time()
HOUR = 3600.0


def at(hours_ago: float) -> float:
    return NOW - hours_ago * HOUR


def workflow_tags(component: str, workflow: str, run: str) -> dict[str, str]:
    return {"component": component, "workflow_id": workflow, "run_id": run}


@dataclass
class Dataset:
    """Three issues in the Python project with known counts, times and attributes."""

    connection: int  # ConnectionError: 3 events, 3 runs, 2 users, production, 1.0, component api, wf_a
    type_error: int  # TypeError: 1 event, warning, staging, 2.0, component worker, wf_b, run r1
    disk_full: int  # message: 2 events, fatal, production, 1.0, component orchestrator, no workflow
    event_ids: dict[str, list[str]]


def connection_error(**fields: Any) -> dict[str, Any]:
    frames = [frame("call_hook", "    return client.post(url)"), frame("post", "    raise ConnectionError(url)")]
    return exception_event("ConnectionError", "refused", frames, **fields)


def build(stack: Stack) -> Dataset:
    sent: dict[str, list[str]] = {"connection": [], "type_error": [], "disk_full": []}
    for n, (run, user, hours) in enumerate([("r1", "u1", 5), ("r2", "u1", 3), ("r3", "u2", 1)]):
        sent["connection"].append(
            support.send_ok(
                stack,
                connection_error(
                    timestamp=at(hours),
                    environment="production",
                    release="1.0",
                    tags=workflow_tags("api", "wf_a", run),
                    user={"id": user},
                    extra={"n": n},
                ),
            )
        )
    sent["type_error"].append(
        support.send_ok(
            stack,
            exception_event(
                "TypeError",
                "None is not callable",
                timestamp=at(6),
                level="warning",
                environment="staging",
                release="2.0",
                tags={**workflow_tags("worker", "wf_b", "r1"), "tenant": "acme"},
                user={"id": "u3"},
            ),
        )
    )
    for hours in (4, 2):
        sent["disk_full"].append(
            support.send_ok(
                stack,
                message_event(
                    "Disk full on /var/lib/data",
                    level="fatal",
                    timestamp=at(hours),
                    environment="production",
                    release="1.0",
                    tags={"component": "orchestrator"},
                ),
            )
        )
    stack.digest()
    return Dataset(
        connection=support.issue_of(stack, sent["connection"][0]),
        type_error=support.issue_of(stack, sent["type_error"][0]),
        disk_full=support.issue_of(stack, sent["disk_full"][0]),
        event_ids=sent,
    )


@pytest.fixture
def data(stack: Stack) -> Dataset:
    return build(stack)


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [issue["id"] for issue in response.json()["data"]]


def patch(stack: Stack, issue_id: int, body: Any) -> Any:
    return stack.client.patch(
        f"/api/v1/issues/{issue_id}", json=body, headers={"Authorization": f"Bearer {stack.token}"}
    )


# --- projects ----------------------------------------------------------------------------------------------


def test_projects(stack: Stack) -> None:
    response = stack.api("/projects")
    assert response.status_code == 200
    projects = response.json()
    assert [(p["id"], p["slug"], p["name"]) for p in projects] == [(1, "python", "Python"), (2, "node", "Node")]
    base = stack.settings.base_url.split("://", 1)[1]
    assert projects[0]["dsn"] == f"http://{PYTHON_KEY}@{base}/1"
    assert projects[1]["dsn"] == f"http://{NODE_KEY}@{base}/2"
    assert (projects[0]["collect_ips"], projects[0]["scrub_emails"], projects[0]["scrub_ips"]) == (True, False, False)


def test_patch_project_privacy_settings(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    response = stack.client.patch("/api/v1/projects/python", json={"scrub_emails": True}, headers=headers)
    assert response.status_code == 200, response.text
    assert (response.json()["scrub_emails"], response.json()["scrub_ips"]) == (True, False)
    response = stack.client.patch(
        "/api/v1/projects/python", json={"scrub_ips": True, "collect_ips": False}, headers=headers
    )
    assert response.json()["scrub_emails"] is True  # unchanged by a request that does not name it
    assert (response.json()["scrub_ips"], response.json()["collect_ips"]) == (True, False)
    assert stack.api("/projects").json()[1]["scrub_ips"] is False  # the other project keeps its own


@pytest.mark.parametrize(
    ("slug", "body", "status"),
    [
        ("nope", {"scrub_ips": True}, 404),
        ("python", {"scrub_everything": True}, 422),
        ("python", {"scrub_ips": "maybe"}, 422),
        ("python", [], 422),
    ],
)
def test_patch_project_rejects_bad_requests(stack: Stack, slug: str, body: object, status: int) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    assert stack.client.patch(f"/api/v1/projects/{slug}", json=body, headers=headers).status_code == status
    assert stack.client.patch(f"/api/v1/projects/{slug}", json=body).status_code == 401


# --- issue lists -------------------------------------------------------------------------------------------


def test_issue_fields(stack: Stack, data: Dataset) -> None:
    issues = stack.api("/projects/python/issues").json()["data"]
    issue = next(issue for issue in issues if issue["id"] == data.connection)
    expected_keys = {
        "id", "title", "culprit", "type", "level", "status", "count", "user_count", "run_count",
        "workflow_count", "first_seen", "last_seen", "grouping_hash",
    }  # fmt: skip
    assert expected_keys <= set(issue)
    assert issue["title"] == "ConnectionError: refused"
    assert issue["culprit"] == "app.worker in post"
    assert issue["type"] == "ConnectionError"
    assert (issue["count"], issue["user_count"], issue["run_count"], issue["workflow_count"]) == (3, 2, 3, 1)
    assert issue["first_release"] == "1.0"
    assert issue["last_release"] == "1.0"
    assert issue["first_seen"] < issue["last_seen"]
    assert issue["first_seen"].endswith("Z")
    type_error = next(issue for issue in issues if issue["id"] == data.type_error)
    assert (type_error["level"], type_error["tenant_count"], type_error["user_count"]) == ("warning", 1, 1)
    disk = next(issue for issue in issues if issue["id"] == data.disk_full)
    assert (disk["title"], disk["type"], disk["level"], disk["run_count"]) == (
        "Disk full on /var/lib/data",
        "message",
        "fatal",
        0,
    )
    assert stack.api("/projects/node/issues").json() == {"data": [], "next_cursor": None}


FILTER_CASES: list[tuple[dict[str, str], set[str]]] = [
    ({}, {"connection", "type_error", "disk_full"}),
    ({"level": "warning"}, {"type_error"}),
    ({"level": "fatal"}, {"disk_full"}),
    ({"level": "debug"}, set()),
    ({"environment": "production"}, {"connection", "disk_full"}),
    ({"environment": "staging"}, {"type_error"}),
    ({"release": "1.0"}, {"connection", "disk_full"}),
    ({"release": "2.0"}, {"type_error"}),
    ({"component": "api"}, {"connection"}),
    ({"component": "orchestrator"}, {"disk_full"}),
    ({"workflow_id": "wf_a"}, {"connection"}),
    ({"workflow_id": "wf_b"}, {"type_error"}),
    ({"workflow_id": "wf_none"}, set()),
    ({"query": "disk"}, {"disk_full"}),
    ({"query": "CONNECTIONERROR"}, {"connection"}),
    ({"query": "app.worker in call"}, set()),
    ({"query": "app.worker in post"}, {"connection"}),  # the culprit is searched too
    ({"query": "%"}, set()),
    ({"query": "_"}, set()),
    ({"environment": "production", "level": "fatal"}, {"disk_full"}),
    ({"environment": "production", "component": "worker"}, set()),
]


def test_issue_filters(stack: Stack, data: Dataset) -> None:
    names = {data.connection: "connection", data.type_error: "type_error", data.disk_full: "disk_full"}
    for params, expected in FILTER_CASES:
        found = ids(stack.api("/projects/python/issues", **params))
        assert {names[issue_id] for issue_id in found} == expected, params
        assert len(found) == len(expected), params


def test_status_filter(stack: Stack, data: Dataset) -> None:
    assert patch(stack, data.type_error, {"status": "resolved"}).status_code == 200
    assert patch(stack, data.disk_full, {"status": "ignored"}).status_code == 200
    assert ids(stack.api("/projects/python/issues", status="unresolved")) == [data.connection]
    assert ids(stack.api("/projects/python/issues", status="resolved")) == [data.type_error]
    assert ids(stack.api("/projects/python/issues", status="ignored")) == [data.disk_full]
    assert stack.api("/projects/python/issues", status="bogus").status_code == 422


def test_sorts(stack: Stack, data: Dataset) -> None:
    # last seen: connection 1 h ago, disk 2 h, type error 6 h; first seen: disk 4 h, connection 5 h, type error 6 h.
    expected = {
        "last_seen": [data.connection, data.disk_full, data.type_error],
        "first_seen": [data.disk_full, data.connection, data.type_error],
        "events": [data.connection, data.disk_full, data.type_error],
        "users": [data.connection, data.type_error, data.disk_full],
        "runs": [data.connection, data.type_error, data.disk_full],
    }
    for sort, order in expected.items():
        assert ids(stack.api("/projects/python/issues", sort=sort)) == order, sort
    assert ids(stack.api("/projects/python/issues")) == expected["last_seen"]
    assert stack.api("/projects/python/issues", sort="title").status_code == 422


def test_cursor_pagination_walks_every_issue_once(stack: Stack) -> None:
    # Fourteen issues with many ties in every sort column (counts of 1 and 2, shared timestamps).
    stamp = at(1)
    made = set()
    for n in range(14):
        kind = f"Error{chr(ord('A') + n)}"
        repeats = 1 + n % 2
        for r in range(repeats):
            event = {
                "event_id": support.new_id(),
                "timestamp": stamp - (n % 3),
                "exception": {"values": [{"type": kind, "value": "x"}]},
                "tags": {"run_id": f"run-{n}-{r}"},
                "user": {"id": f"user-{n % 4}-{r}"},
            }
            support.send_ok(stack, event)
    stack.digest()
    made = set(ids(stack.api("/projects/python/issues", limit=100)))
    assert len(made) == 14
    for sort in ("last_seen", "first_seen", "events", "users", "runs"):
        for limit in (1, 4, 5, 14):
            seen: list[int] = []
            cursor = None
            pages = 0
            while True:
                params: dict[str, Any] = {"sort": sort, "limit": limit}
                if cursor:
                    params["cursor"] = cursor
                response = stack.api("/projects/python/issues", **params)
                page = response.json()
                seen += ids(response)
                cursor = page["next_cursor"]
                pages += 1
                assert pages <= 15
                if cursor is None:
                    break
            assert len(seen) == len(set(seen)) == 14, (sort, limit)
            assert set(seen) == made
            assert seen == ids(stack.api("/projects/python/issues", sort=sort, limit=100)), (sort, limit)


def test_pagination_combines_with_filters(stack: Stack, data: Dataset) -> None:
    first = stack.api("/projects/python/issues", environment="production", limit=1).json()
    assert len(first["data"]) == 1 and first["next_cursor"]
    second = stack.api("/projects/python/issues", environment="production", limit=1, cursor=first["next_cursor"]).json()
    assert len(second["data"]) == 1
    assert second["next_cursor"] is None
    assert {first["data"][0]["id"], second["data"][0]["id"]} == {data.connection, data.disk_full}


BAD_CURSORS = [
    "not a cursor!",
    "@@@@",
    base64.urlsafe_b64encode(b"{}").decode(),
    base64.urlsafe_b64encode(b"[1]").decode(),
    base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),
    base64.urlsafe_b64encode(b'["a", 1]').decode(),
    base64.urlsafe_b64encode(b"[true, 1]").decode(),
    base64.urlsafe_b64encode(b"[null, 1]").decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
]


def test_invalid_cursor_is_400(stack: Stack) -> None:
    for cursor in BAD_CURSORS:
        response = stack.api("/projects/python/issues", cursor=cursor)
        assert response.status_code == 400, (cursor, response.text)
        assert "cursor" in response.json()["detail"]


def test_invalid_event_cursor_is_400(stack: Stack, data: Dataset) -> None:
    bad = base64.urlsafe_b64encode(b"[1, 2]").decode()
    assert stack.api(f"/issues/{data.connection}/events", cursor=bad).status_code == 400
    assert stack.api("/runs/r1/events", cursor="%%%").status_code == 400


def test_list_errors(stack: Stack) -> None:
    assert stack.api("/projects/nope/issues").status_code == 404
    assert stack.api("/projects/python/issues", limit=0).status_code == 422
    assert stack.api("/projects/python/issues", limit=101).status_code == 422


# --- one issue ---------------------------------------------------------------------------------------------


def test_issue_detail_facets_and_series(stack: Stack, data: Dataset) -> None:
    issue = stack.api(f"/issues/{data.connection}").json()
    assert issue["id"] == data.connection
    assert issue["count"] == 3
    facets = {facet["key"]: facet for facet in issue["tags"]}
    assert {"run_id", "workflow_id", "component", "environment", "release", "level"} <= set(facets)
    assert facets["run_id"]["total"] == 3
    assert sorted((v["value"], v["count"]) for v in facets["run_id"]["values"]) == [("r1", 1), ("r2", 1), ("r3", 1)]
    assert facets["workflow_id"]["values"] == [{"value": "wf_a", "count": 3}]
    assert facets["environment"]["values"] == [{"value": "production", "count": 3}]
    assert facets["release"]["values"] == [{"value": "1.0", "count": 3}]
    assert facets["level"]["values"] == [{"value": "error", "count": 3}]

    hourly = issue["hourly"]
    assert len(hourly) == 24
    assert sum(point["count"] for point in hourly) == 3
    hours = [point["hour"] for point in hourly]
    assert hours == sorted(hours)
    counts = {point["hour"]: point["count"] for point in hourly}
    for hours_ago in (5, 3, 1):
        bucket = int(at(hours_ago) // 3600 * 3600)
        assert counts[support_iso(bucket)] >= 1

    longer = stack.api(f"/issues/{data.type_error}", hours=48).json()["hourly"]
    assert len(longer) == 48
    assert sum(point["count"] for point in longer) == 1
    assert stack.api(f"/issues/{data.connection}", hours=0).status_code == 422


def support_iso(stamp: float) -> str:
    from stackwatch.server.api.queries import iso

    value = iso(stamp)
    assert value is not None
    return value


def test_facets_sort_values_by_count(stack: Stack) -> None:
    for n, env in enumerate(["a", "b", "b", "c", "c", "c"]):
        support.send_ok(stack, exception_event(environment=env, extra={"n": n}))
    stack.digest()
    issue_id = ids(stack.api("/projects/python/issues"))[0]
    facets = {facet["key"]: facet for facet in stack.api(f"/issues/{issue_id}").json()["tags"]}
    assert facets["environment"]["values"] == [
        {"value": "c", "count": 3},
        {"value": "b", "count": 2},
        {"value": "a", "count": 1},
    ]
    assert facets["environment"]["total"] == 6


def test_the_run_facet_comes_from_the_impact_counts(stack: Stack) -> None:
    """Runs are counted once, in issue_impact: no issue_tags rows for them, the same facet as the other tags."""
    runs = [f"run_{n:02d}" for n in range(12) for _ in range(n + 1)]  # run_11 has 12 events, run_00 one
    for n, run in enumerate(runs):
        support.send_ok(stack, exception_event(tags={"run_id": run, "step_id": "fetch"}, extra={"n": n}))
    stack.digest()
    issue_id = ids(stack.api("/projects/python/issues"))[0]
    tags = stack.api(f"/issues/{issue_id}").json()["tags"]
    assert [facet["key"] for facet in tags] == sorted(facet["key"] for facet in tags)
    facets = {facet["key"]: facet for facet in tags}
    assert facets["run_id"]["total"] == len(runs)
    assert facets["run_id"]["values"] == [{"value": f"run_{n:02d}", "count": n + 1} for n in range(11, 1, -1)]
    assert facets["step_id"]["values"] == [{"value": "fetch", "count": len(runs)}]
    with stack.services.engine.connect() as connection:
        keys = set(connection.execute(select(issue_tags.c.key).where(issue_tags.c.issue_id == issue_id)).scalars())
    assert "run_id" not in keys
    assert "step_id" in keys


def test_patch_issue(stack: Stack, data: Dataset) -> None:
    resolved = patch(stack, data.connection, {"status": "resolved"})
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"] is not None
    assert stack.api(f"/issues/{data.connection}").json()["status"] == "resolved"
    reopened = patch(stack, data.connection, {"status": "unresolved"})
    assert (reopened.json()["status"], reopened.json()["resolved_at"]) == ("unresolved", None)
    assert patch(stack, data.connection, {"status": "done"}).status_code == 422
    assert patch(stack, data.connection, {}).status_code == 422
    assert patch(stack, 999_999, {"status": "resolved"}).status_code == 404
    assert stack.api("/issues/999999").status_code == 404


# --- events ------------------------------------------------------------------------------------------------


def test_issue_events_page(stack: Stack, data: Dataset) -> None:
    page = stack.api(f"/issues/{data.connection}/events").json()
    assert page["next_cursor"] is None
    events = page["data"]
    assert {event["event_id"] for event in events} == set(data.event_ids["connection"])
    assert {event["run_id"] for event in events} == {"r1", "r2", "r3"}
    assert all(event["issue_id"] == data.connection for event in events)
    first = next(event for event in events if event["run_id"] == "r1")
    assert (first["component"], first["workflow_id"], first["user"], first["environment"], first["release"]) == (
        "api",
        "wf_a",
        "id:u1",
        "production",
        "1.0",
    )
    assert first["handled"] is True

    walked: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = stack.api(f"/issues/{data.connection}/events", **params).json()
        walked += [event["event_id"] for event in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(walked) == sorted(data.event_ids["connection"])
    assert len(walked) == 3
    assert stack.api("/issues/999999/events").status_code == 404


def test_each_event_keeps_its_own_title(stack: Stack) -> None:
    """Events keep no title column: the list derives each one's from its payload, not the issue's (the latest)."""
    for n in range(3):
        event = exception_event(extra={"n": n})
        event["exception"]["values"][0]["value"] = f"refused by host {n}"
        event["fingerprint"] = ["one-issue"]
        support.send_ok(stack, event)
    support.send_ok(stack, {**message_event("disk full on /var"), "fingerprint": ["one-issue"]})
    stack.digest()
    issue_id = ids(stack.api("/projects/python/issues"))[0]
    listed = stack.api(f"/issues/{issue_id}/events").json()["data"]
    kind = exception_event()["exception"]["values"][0]["type"]
    assert [e["title"] for e in listed] == ["disk full on /var"] + [f"{kind}: refused by host {n}" for n in (2, 1, 0)]
    detail = stack.api(f"/events/{listed[1]['event_id']}").json()
    assert detail["title"] == f"{kind}: refused by host 2"


def test_event_detail(stack: Stack, data: Dataset) -> None:
    event_id = data.event_ids["connection"][0]
    event = stack.api(f"/events/{event_id}").json()
    assert event["event_id"] == event_id
    assert event["project_id"] == 1
    assert event["issue_id"] == data.connection
    assert event["title"] == "ConnectionError: refused"
    payload = event["data"]
    assert payload["event_id"] == event_id
    assert payload["exception"]["values"][0]["type"] == "ConnectionError"
    assert payload["tags"] == workflow_tags("api", "wf_a", "r1")
    assert payload["extra"] == {"n": 0}
    detail = stack.api(f"/issues/{data.connection}").json()
    assert payload["grouping"]["hash"] == detail["grouping_hash"]
    assert [(h["hash"], h["version"]) for h in detail["hashes"]] == [
        (detail["grouping_hash"], payload["grouping"]["version"])
    ]
    dashed = f"{event_id[:8]}-{event_id[8:12]}-{event_id[12:16]}-{event_id[16:20]}-{event_id[20:]}"
    assert stack.api(f"/events/{dashed.upper()}").json()["event_id"] == event_id
    assert stack.api(f"/events/{support.new_id()}").status_code == 404


def test_run_events_across_issues(stack: Stack, data: Dataset) -> None:
    events = stack.api("/runs/r1/events").json()["data"]
    assert {(event["issue_id"], event["event_id"]) for event in events} == {
        (data.connection, data.event_ids["connection"][0]),
        (data.type_error, data.event_ids["type_error"][0]),
    }
    assert [event["event_id"] for event in stack.api("/runs/r3/events").json()["data"]] == [
        data.event_ids["connection"][2]
    ]
    assert stack.api("/runs/nope/events").json() == {"data": [], "next_cursor": None}
    first = stack.api("/runs/r1/events", limit=1).json()
    second = stack.api("/runs/r1/events", limit=1, cursor=first["next_cursor"]).json()
    assert {first["data"][0]["issue_id"], second["data"][0]["issue_id"]} == {data.connection, data.type_error}
    assert second["next_cursor"] is None


# --- authentication ----------------------------------------------------------------------------------------

PROTECTED = ["/projects", "/projects/python/issues", "/issues/1", "/issues/1/events", "/events/abc", "/runs/r1/events"]


def test_every_api_path_needs_a_valid_token(stack: Stack) -> None:
    for path in PROTECTED:
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer swt_not-a-real-token"},
            {"Authorization": f"Basic {stack.token}"},
            {"Authorization": stack.token},
        ):
            response = stack.client.get(f"/api/v1{path}", headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    response = stack.client.patch("/api/v1/issues/1", json={"status": "resolved"})
    assert response.status_code == 401
    assert stack.client.get("/api/v1/projects", headers={"Authorization": f"bearer  {stack.token} "}).status_code == 200


def test_revoked_token_is_refused(stack: Stack) -> None:
    assert stack.api("/projects").status_code == 200
    with stack.services.engine.begin() as connection:
        connection.execute(update(api_tokens).values(revoked_at=time.time()))
    assert stack.api("/projects").status_code == 401


def test_token_use_is_recorded(stack: Stack) -> None:
    from sqlalchemy import select

    stack.api("/projects")
    with stack.services.engine.connect() as connection:
        assert connection.execute(select(api_tokens.c.last_used_at)).scalar() is not None


# --- OpenAPI, health, readiness, metrics -------------------------------------------------------------------


def test_openapi_lists_the_paths(stack: Stack) -> None:
    response = stack.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path, method in [
        ("/api/v1/projects", "get"),
        ("/api/v1/projects/{slug}", "patch"),
        ("/api/v1/projects/{slug}/issues", "get"),
        ("/api/v1/issues/{issue_id}", "get"),
        ("/api/v1/issues/{issue_id}", "patch"),
        ("/api/v1/issues/{issue_id}/events", "get"),
        ("/api/v1/events/{event_id}", "get"),
        ("/api/v1/runs/{run_id}/events", "get"),
    ]:
        assert method in paths.get(path, {}), path
    assert not any(path.startswith("/api/{project_id}") for path in paths)  # ingest is not part of the REST API
    parameters = {p["name"] for p in paths["/api/v1/projects/{slug}/issues"]["get"]["parameters"]}
    assert {"status", "level", "environment", "release", "component", "workflow_id", "query", "sort", "cursor"} <= (
        parameters
    )


def test_health_and_readiness(stack: Stack) -> None:
    health = stack.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = stack.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["inbox_backlog"] == 0
    assert ready.json()["status"] == "ok"
    support.send_ok(stack, exception_event())
    support.send_ok(stack, message_event("hello"))
    assert stack.client.get("/readyz").json()["inbox_backlog"] == 2
    stack.digest()
    assert stack.client.get("/readyz").json()["inbox_backlog"] == 0


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def test_metrics(stack: Stack) -> None:
    before = parse_metrics(stack.client.get("/metrics").text)
    support.send_ok(stack, exception_event())
    support.send_ok(stack, exception_event())
    stack.client.post("/api/1/envelope/", content=b"{}\n", headers={})  # a 401
    stack.digest()
    response = stack.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE stackwatch_ingest_requests_total counter" in text
    assert "# TYPE stackwatch_inbox_backlog gauge" in text
    after = parse_metrics(text)
    assert all(name.startswith("stackwatch_") for name in after)

    def delta(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert delta('stackwatch_ingest_requests_total{status="200"}') == 2
    assert delta('stackwatch_ingest_requests_total{status="401"}') == 1
    assert delta("stackwatch_ingest_envelopes_total") == 2
    assert delta("stackwatch_digest_events_total") == 2
    assert delta("stackwatch_issues_created_total") == 1
    assert after["stackwatch_inbox_backlog"] == 0
    # Without SMTP the default rules' e-mail channel waits: nothing is queued for it, nothing fails.
    assert delta("stackwatch_alerts_pending") == 0
    assert delta("stackwatch_alerts_failed") == 0
    assert after["stackwatch_alert_channels_unhealthy"] == 0


def test_api_answers_are_json(stack: Stack, data: Dataset) -> None:
    response = stack.api(f"/issues/{data.disk_full}")
    assert response.headers["content-type"].startswith("application/json")
    assert orjson.loads(response.content)["id"] == data.disk_full
