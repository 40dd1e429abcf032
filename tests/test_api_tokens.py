"""REST API tokens: scopes (admin, read), revocation, "last used", and the throttle on wrong tokens (both backends)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import api_tokens, auth_throttle
from tests import support
from tests.conftest import Stack


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_token(stack: Stack, scope: str) -> str:
    with stack.services.engine.begin() as connection:
        return accounts.create_token(connection, f"{scope} token", scope=scope)


def an_issue(stack: Stack) -> int:
    event_id = support.send_ok(stack, support.exception_event())
    stack.digest()
    return support.issue_of(stack, event_id)


def test_a_read_only_token_reads_and_changes_nothing(stack: Stack) -> None:
    issue_id = an_issue(stack)
    token = new_token(stack, "read")
    for path in ("/projects", "/projects/python/issues", f"/issues/{issue_id}", "/projects/python/alert-rules"):
        assert stack.client.get(f"/api/v1{path}", headers=bearer(token)).status_code == 200, path
    writes = [
        ("PATCH", f"/issues/{issue_id}", {"status": "resolved"}),
        ("PATCH", "/projects/python", {"scrub_ips": True}),
        ("POST", "/projects/python/alert-channels", {"name": "x", "kind": "webhook", "config": {}}),
        ("DELETE", "/projects/python/alert-rules/1", None),
    ]
    for method, path, body in writes:
        refused = stack.client.request(method, f"/api/v1{path}", json=body, headers=bearer(token))
        assert refused.status_code == 403, (method, path, refused.text)
        assert "read-only" in refused.json()["detail"]
    assert stack.api(f"/issues/{issue_id}").json()["status"] == "unresolved"  # nothing changed
    assert stack.api("/projects").json()[0]["scrub_ips"] is False
    allowed = stack.client.patch(f"/api/v1/issues/{issue_id}", json={"status": "resolved"}, headers=bearer(stack.token))
    assert allowed.status_code == 200  # an admin token (every token made before scopes) may


def test_an_unknown_scope_is_refused(stack: Stack) -> None:
    with pytest.raises(accounts.AccountError, match="unknown token scope"), stack.services.engine.begin() as connection:
        accounts.create_token(connection, scope="write")


def test_a_revoked_token_gets_401(stack: Stack) -> None:
    token = new_token(stack, "read")
    assert stack.client.get("/api/v1/projects", headers=bearer(token)).status_code == 200
    with stack.services.engine.begin() as connection:
        (listed,) = [t for t in accounts.list_tokens(connection) if t.scope == "read"]
        assert accounts.revoke_token(connection, listed.id) is True
        assert accounts.revoke_token(connection, listed.id) is False
    refused = stack.client.get("/api/v1/projects", headers=bearer(token))
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    with stack.services.engine.connect() as connection:  # kept as a record
        assert [t.id for t in accounts.list_tokens(connection) if t.revoked_at is not None] == [listed.id]
        assert listed.id not in [t.id for t in accounts.list_tokens(connection, include_revoked=False)]


def last_used(stack: Stack) -> float | None:
    with stack.services.engine.connect() as connection:
        query = select(api_tokens.c.last_used_at).where(api_tokens.c.name == "tests")
        value: float | None = connection.execute(query).scalar_one()
        return value


def test_last_used_is_written_at_most_once_a_minute(stack: Stack) -> None:
    assert last_used(stack) is None
    assert stack.api("/projects").status_code == 200
    first = last_used(stack)
    assert first is not None
    earlier = first - 30  # as if used 30 s ago: recent enough, so further requests do not write
    with stack.services.engine.begin() as connection:
        connection.execute(update(api_tokens).values(last_used_at=earlier))
    stack.api("/projects")
    assert last_used(stack) == earlier
    with stack.services.engine.begin() as connection:  # more than a minute ago: the next request records its use
        connection.execute(update(api_tokens).values(last_used_at=first - 61))
    stack.api("/projects")
    recorded = last_used(stack)
    assert recorded is not None and recorded >= first


def test_wrong_tokens_are_throttled_per_address(stack: Stack) -> None:
    for number in range(30):
        wrong = stack.client.get("/api/v1/projects", headers=bearer(f"swt_guess{number}"))
        assert wrong.status_code == 401, number
    refused = stack.client.get("/api/v1/projects", headers=bearer("swt_guess-again"))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 15 * 60
    assert "too many wrong API tokens" in refused.json()["detail"]
    assert stack.api("/projects").status_code == 429  # from this address, the right token waits too
    with stack.services.engine.begin() as connection:  # the window passes
        connection.execute(update(auth_throttle).values(window_start=time.time() - 16 * 60))
    assert stack.api("/projects").status_code == 200


def test_a_request_without_a_token_is_not_counted(stack: Stack) -> None:
    for _ in range(40):
        assert stack.client.get("/api/v1/projects").status_code == 401
    assert stack.api("/projects").status_code == 200
