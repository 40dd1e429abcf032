"""No path or query parameter gets a 5xx: every route of the app, with each kind of bad value in each parameter.

The routes are read from the app itself (``iter_route_contexts``), so a route added later is covered without
touching this file; only what the app cannot tell — the query parameters a dashboard page reads by hand, and a
valid body for an API route that takes one (else FastAPI answers 422 before the route runs) — is listed here, and
a route with a body that is not listed fails the test. Requests go as an administrator (dashboard session and
API token), on both backends.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from fastapi.routing import iter_route_contexts
from sqlalchemy import select, update
from starlette.testclient import TestClient

from stackwatch.server import saved_searches
from stackwatch.server.storage.schema import alert_channels, alert_rules, api_tokens, events, project_keys
from stackwatch.server.storage.schema import saved_searches as saved_searches_table
from tests.conftest import PYTHON_KEY, Stack
from tests.support import AUTH, event_envelope, message_event, send_ok
from tests.test_web_auth import add_user, csrf_of, login

# Path segments, already percent-encoded as a client would send them. Whole numbers that no row can have as its id
# are answered 404, like any id that is not there; malformed ones 400, 404 or 422.
OUT_OF_RANGE = {
    "2^63 (one past BIGINT)": str(2**63),
    "2^64 - 1": str(2**64 - 1),
    "2^64": str(2**64),
    "a 30-digit number": "9" * 30,
    "-(2^63) - 1": str(-(2**63) - 1),
    "-1": "-1",
    "0": "0",
}
MALFORMED = {
    "an Arabic-Indic digit (int() accepts it)": "%D9%A1",
    "a superscript digit": "%C2%B9",
    "a fullwidth digit": "%EF%BC%91",
    "a fraction": "1.5",
    "an exponent": "1e3",
}
OTHERS = {
    "a NUL byte": "%00",
    "a NUL byte inside": "a%00b",
    "invalid UTF-8": "%FF%FE",
    "a right-to-left override": "%E2%80%AE1",
    "a 5,000-character string": "x" * 5000,
}


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CURSORS = {
    "a cursor that is not base64": "!!!",
    "a cursor of bytes that are not JSON": "AAAA",
    "a cursor that is a JSON object": _cursor({"id": 1}),
    "a cursor of the wrong size": _cursor([1, 2, 3]),
    "a cursor of strings": _cursor(["a", "b"]),
    "a cursor of booleans": _cursor([True, True]),
    "a cursor past 64 bits": _cursor([2**64 - 1, 1]),
    "a cursor one past BIGINT": _cursor([2**63, 2**63]),
    "a cursor with an id past 64 bits": _cursor([1, 2**64 - 1]),
    "a one-value cursor past 64 bits": _cursor([2**64 - 1]),
}
ENUMS = {"an unknown name": "bogus", "a name with a NUL byte": "resolved%00"}

# Query parameters the dashboard reads from ``request.query_params`` itself, which the route cannot list.
WEB_QUERY = {
    "/projects/{slug}/issues": ("status", "sort", "limit", "cursor", "level", "environment", "query"),
    "/projects/{slug}/issues/rows": ("status", "sort", "limit", "cursor", "level", "release"),
    "/issues/{issue_id}": ("event", "range"),
    "/issues/{issue_id}/summary": ("event", "range"),
    "/projects/{slug}/trends": ("range",),
}
INGEST_QUERY = ("sentry_key", "sentry_version", "sentry_client")
# A valid body for each API route that takes one, so that the route itself runs with the bad parameter.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/v1/projects/{slug}"): {"collect_ips": True},
    ("PATCH", "/api/v1/issues/{issue_id}"): {"status": "resolved"},
    ("POST", "/api/v1/issues/{issue_id}/comments"): {"text": "a comment"},
    ("POST", "/api/v1/projects/{slug}/alert-channels"): {
        "name": "hook",
        "kind": "webhook",
        "config": {"url": "http://127.0.0.1:9/"},
    },
    ("POST", "/api/v1/projects/{slug}/alert-rules"): {"name": "rule", "trigger": "new_issue", "channels": []},
    ("PATCH", "/api/v1/projects/{slug}/alert-rules/{rule_id}"): {"name": "renamed"},
    ("POST", "/api/v1/projects/{slug}/saved-searches"): {"name": "errors", "query": "level:error"},
}
# Streams that stay open while the issue or project exists: only their path parameters are tried (bad ones end
# in a 404 at once); ``since`` is an opaque version string, compared and never parsed.
STREAMS = re.compile(r"/live$")
DOCS = frozenset({"/api/v1/openapi.json", "/api/v1/docs", "/docs/oauth2-redirect"})


@dataclass(frozen=True)
class Request:
    method: str
    route: str
    what: str  # the parameter and the kind of value
    url: str
    expect: tuple[int, ...] | None  # the statuses allowed; None: anything but a 5xx
    body: dict[str, Any] | None = None


@dataclass
class Seeded:
    defaults: dict[str, str]  # a valid value of every path parameter name


def _seed(stack: Stack, client: TestClient) -> Seeded:
    event_id = send_ok(stack, message_event("seed", tags={"run_id": "run-1"}))
    stack.digest()
    admin = add_user(stack, "admin@example.com", admin=True)
    assert login(client, "admin@example.com").status_code == 303
    with stack.services.engine.begin() as connection:  # the API token is the admin's: saved searches need a user
        connection.execute(update(api_tokens).values(user_id=admin))
        saved_searches.create(connection, admin, 1, "seeded", "level:error")
    with stack.services.engine.connect() as connection:
        issue_id = connection.execute(select(events.c.issue_id).where(events.c.event_id == event_id)).scalar_one()

        def first(column: Any) -> str:
            return str(connection.execute(select(column).order_by(column).limit(1)).scalar_one())

        defaults = {
            "project_id": "1",
            "slug": "python",
            "issue_id": str(issue_id),
            "event_id": event_id,
            "run_id": "run-1",
            "channel_id": first(alert_channels.c.id),
            "rule_id": first(alert_rules.c.id),
            "key_id": first(project_keys.c.id),
            "token_id": first(api_tokens.c.id),
            "search_id": first(saved_searches_table.c.id),
            "attachment_id": "1",  # none is stored: the download's checks still run before its 404
        }
    return Seeded(defaults)


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)(?::\w+)?}", lambda match: values[match.group(1)], path)


def _routes(stack: Stack) -> Iterator[tuple[str, str, list[str], list[str]]]:
    """(method, path, path parameters, query parameters) of every route of the app."""
    for route in iter_route_contexts(stack.app.routes):
        if not route.methods or route.path in DOCS:
            continue
        params = re.findall(r"{(\w+)(?::\w+)?}", route.path)
        dependant = getattr(route, "dependant", None)
        query = [p.alias for p in dependant.query_params] if dependant is not None else []
        query += WEB_QUERY.get(route.path, ())
        if route.path.startswith("/api/{project_id}/"):
            query += INGEST_QUERY
        for method in sorted(route.methods - {"HEAD"}):
            yield method, route.path, params, sorted(set(query))


def _expected(method: str, name: str, kind: str) -> tuple[int, ...] | None:
    """The statuses a bad value of path parameter ``name`` may get; ``None``: anything but a 5xx."""
    if method == "OPTIONS":
        return None  # a CORS preflight is answered whatever the path holds
    if name == "project_id":
        return (400, 403)  # ingest: a malformed project id (X-Sentry-Error), or not the key's (0)
    if name == "run_id":
        return (200, 400, 404)  # any text can name a run; one without events is an empty list in the API
    return (404,) if kind in OUT_OF_RANGE else (400, 404, 422)


def _requests(stack: Stack, seeded: Seeded) -> Iterator[Request]:
    for method, path, params, query in _routes(stack):
        body = BODIES.get((method, path))
        if path.startswith("/api/v1/") and method in ("POST", "PATCH", "PUT") and body is None:
            assert path.endswith("/test"), f"give {method} {path} a valid body in BODIES"
        for name in params:
            for kind, value in {**OUT_OF_RANGE, **MALFORMED, **OTHERS}.items():
                url = _fill(path, {**seeded.defaults, name: value})
                yield Request(method, path, f"{name} = {kind}", url, _expected(method, name, kind), body)
        if method != "GET" or STREAMS.search(path):
            continue
        base = _fill(path, seeded.defaults)
        for name in query:
            values = {**OUT_OF_RANGE, **MALFORMED, **OTHERS, **ENUMS, **(CURSORS if name == "cursor" else {})}
            for kind, value in values.items():
                expect = (400,) if kind in CURSORS else None
                yield Request(method, path, f"?{name} = {kind}", f"{base}?{quote(name)}={value}", expect, body)


def _send(client: TestClient, token: str, request: Request, csrf: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if request.route.startswith("/api/{project_id}/"):
        content = event_envelope(message_event("never stored"))
        headers = {"X-Sentry-Auth": AUTH} if "sentry_key" not in request.url else {}
        return client.request(request.method, request.url, content=content, headers=headers)
    if request.route.startswith("/api/v1/"):
        return client.request(request.method, request.url, json=request.body, headers=headers)
    data = {"csrf_token": csrf} if request.method == "POST" else None
    return client.request(request.method, request.url, data=data, headers=headers, follow_redirects=False)


def _problems(request: Request, response: httpx.Response) -> list[str]:
    problems = []
    if response.status_code >= 500:
        problems.append(f"a {response.status_code} for a client's parameter")
    elif request.expect is not None and response.status_code not in request.expect:
        problems.append(f"status {response.status_code}, expected one of {request.expect}")
    if request.route.startswith("/api/{project_id}/") and response.status_code >= 400:
        error = response.headers.get("x-sentry-error", "")
        if not error or not (error.isascii() and error.isprintable()):
            problems.append(f"X-Sentry-Error {error!r} is missing or not printable ASCII")
    return problems


def test_no_parameter_gets_a_5xx(stack: Stack) -> None:
    # A 5xx must come back as an answer to count, not as the route's exception raised into the test.
    client = TestClient(stack.app, raise_server_exceptions=False)
    seeded = _seed(stack, client)
    csrf = csrf_of(client.get("/account/tokens"))
    routes = {(method, path) for method, path, _, _ in _routes(stack)}
    # The enumeration itself must see every part of the app, or the test proves nothing.
    for expected in [
        ("POST", "/api/{project_id}/envelope/"),
        ("GET", "/api/v1/issues/{issue_id}"),
        ("DELETE", "/api/v1/projects/{slug}/alert-rules/{rule_id}"),
        ("GET", "/projects/{slug}/issues"),
        ("POST", "/projects/{slug}/settings/keys/{key_id}/revoke"),
        ("GET", "/runs/{run_id:path}"),
    ]:
        assert expected in routes, f"{expected} not found among the app's routes"
    failures = []
    sent = 0
    for request in _requests(stack, seeded):
        response = _send(client, stack.token, request, csrf)
        sent += 1
        problems = _problems(request, response)
        if problems:
            shown = f"{request.method} {request.route} with {request.what}"
            failures.append(f"{shown}: {'; '.join(problems)} ({response.text[:120]!r})")
    assert sent > 1000
    assert not failures, f"{len(failures)} of {sent} requests answered wrongly:\n" + "\n".join(failures)
    # Nothing a refused request carried was stored, and the seeded data is still there.
    assert stack.api(f"/events/{seeded.defaults['event_id']}").status_code == 200
    with stack.services.engine.connect() as connection:
        assert connection.execute(select(project_keys.c.active).where(project_keys.c.public_key == PYTHON_KEY)).scalar()


def test_the_reported_ingest_answer_is_a_400_with_an_ascii_reason(stack: Stack) -> None:
    """The audit's case: the id is echoed into ``X-Sentry-Error``, which is written as Latin-1."""
    response = stack.client.post(
        "/api/%D9%A1/envelope/", content=event_envelope(message_event("x")), headers={"X-Sentry-Auth": AUTH}
    )
    assert response.status_code == 400
    assert response.headers["x-sentry-error"] == "invalid project id '\\u0661': must be a number"
    assert response.json()["detail"] == "invalid project id '\\u0661': must be a number"


BIG_NUMBERS = [2**63, 2**64 - 1, 2**64, 10**30, -(2**63) - 1]
# (method, path, body): each "N" is replaced by each of BIG_NUMBERS; RULE by a rule's id.
BODY_NUMBERS = [
    ("POST", "/projects/python/alert-rules", {"name": "r", "trigger": "new_issue", "channels": ["N"]}),
    ("PATCH", "/projects/python/alert-rules/RULE", {"channels": ["N"]}),
    ("POST", "/projects/python/alert-rules", {"name": "r", "trigger": "new_issue", "channels": [], "threshold": "N"}),
    (
        "PATCH",
        "/projects/python/alert-rules/RULE",
        {"trigger": "event_frequency", "threshold": 5, "window_minutes": "N"},
    ),
    ("PATCH", "/projects/python/alert-rules/RULE", {"cooldown_minutes": "N"}),
    ("POST", "/projects/python/alert-channels", {"name": "c", "kind": "email", "config": {}, "hourly_cap": "N"}),
]


def test_no_number_in_a_body_gets_a_5xx(stack: Stack) -> None:
    """Found by schemathesis: a rule's channel id beyond 64 bits reached SQLite (OverflowError)."""
    client = TestClient(stack.app, raise_server_exceptions=False)
    with stack.services.engine.connect() as connection:
        rule_id = connection.execute(select(alert_rules.c.id).order_by(alert_rules.c.id)).scalars().first()
    headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"}
    failures = []
    for method, path, body in BODY_NUMBERS:
        for number in BIG_NUMBERS:
            content = json.dumps(body).replace('"N"', str(number)).encode()  # json, not orjson: any integer
            url = f"/api/v1{path.replace('RULE', str(rule_id))}"
            response = client.request(method, url, content=content, headers=headers)
            if response.status_code != 422:
                failures.append(f"{method} {path} {content!r}: {response.status_code} {response.text[:100]}")
    assert not failures, "\n".join(failures)


def test_ingest_headers_never_echo_unprintable_client_text(stack: Stack) -> None:
    """Headers an ingest answer carries are printable ASCII whatever the request's headers held."""
    preflight = stack.client.options("/api/1/envelope/", headers={"Access-Control-Request-Headers": b"x-a\x01b"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-headers"].startswith("x-sentry-auth, ")
    body = event_envelope(message_event("x"))
    refused = stack.client.post(
        "/api/1/envelope/", content=body, headers={"X-Sentry-Auth": AUTH, "Content-Encoding": b"gz\x01ip"}
    )
    assert refused.status_code == 400
    error = refused.headers["x-sentry-error"]
    assert error.isascii() and error.isprintable() and "unsupported Content-Encoding" in error
    for response in (preflight, refused):
        assert all(value.isascii() and value.isprintable() for value in response.headers.values())
