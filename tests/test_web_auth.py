"""Dashboard accounts and access: login, sessions, CSRF, throttling, members, the projects page (both backends)."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, update
from starlette.testclient import TestClient

from stackwatch.cli import main
from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import auth_throttle, issue_hourly, issues
from stackwatch.server.web.routes import safe_next
from stackwatch.server.web.sessions import SESSION_COOKIE
from tests.conftest import Stack, make_project
from tests.support import foreign_markup

PASSWORD = "correct horse battery"
GENERIC = "The email or the password is wrong."


def add_user(stack: Stack, email: str, *, admin: bool = False) -> int:
    with stack.services.engine.begin() as connection:
        return accounts.create_user(connection, email, PASSWORD, admin=admin)


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD, next_url: str = "/") -> httpx.Response:
    token = csrf_of(client.get("/login"))
    form = {"email": email, "password": password, "next": next_url, "csrf_token": token}
    return client.post("/login", data=form, follow_redirects=False)


def test_login_sets_a_safe_cookie_and_shows_the_projects(stack: Stack) -> None:
    add_user(stack, "ops@example.com", admin=True)
    assert stack.client.get("/", follow_redirects=False).headers["location"] == "/login?next=/"
    response = login(stack.client, "Ops@Example.com")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith(SESSION_COOKIE + "="))
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
    assert "max-age=1209600" in cookie.lower()
    page = stack.client.get("/")
    assert page.status_code == 200
    assert "Python" in page.text and "Node" in page.text and "ops@example.com" in page.text


def test_wrong_password_and_unknown_email_get_the_same_answer(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    wrong = login(stack.client, "ops@example.com", "not the password")
    unknown = login(stack.client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert GENERIC in wrong.text and GENERIC in unknown.text
    assert SESSION_COOKIE not in stack.client.cookies
    assert stack.client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "/\\evil.example", "evil", ""])
def test_next_never_leaves_the_site(target: str) -> None:
    assert safe_next(target) == "/"


def test_login_redirect_refuses_other_sites(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    for target in ("//evil.example", "https://evil.example/x"):
        assert login(stack.client, "ops@example.com", next_url=target).headers["location"] == "/"
        stack.client.cookies.clear()
    assert login(stack.client, "ops@example.com", next_url="/?page=2").headers["location"] == "/?page=2"


def test_the_login_page_sends_a_logged_in_user_on(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    login(stack.client, "ops@example.com")
    assert stack.client.get("/login?next=//evil.example", follow_redirects=False).headers["location"] == "/"


def test_login_without_csrf_is_refused(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    stack.client.get("/login")
    form = {"email": "ops@example.com", "password": PASSWORD}
    refused = stack.client.post("/login", data=form, follow_redirects=False)
    assert refused.status_code == 403 and "security token" in refused.text
    wrong = stack.client.post("/login", data={**form, "csrf_token": "guessed"}, follow_redirects=False)
    assert wrong.status_code == 403
    assert SESSION_COOKIE not in stack.client.cookies


def test_logout_needs_the_session_csrf_token(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    login(stack.client, "ops@example.com")
    refused = stack.client.post("/logout", follow_redirects=False)
    assert refused.status_code == 403
    forged = stack.client.post("/logout", data={"csrf_token": "x" * 43}, follow_redirects=False)
    assert forged.status_code == 403
    page = stack.client.get("/")
    assert page.status_code == 200  # still logged in
    done = stack.client.post("/logout", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert stack.client.get("/", follow_redirects=False).status_code == 303


def test_logout_everywhere_ends_other_sessions(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    other = TestClient(stack.app)
    login(stack.client, "ops@example.com")
    login(other, "ops@example.com")
    token = csrf_of(stack.client.get("/"))
    stack.client.post("/logout", data={"csrf_token": token, "everywhere": "1"}, follow_redirects=False)
    assert other.get("/", follow_redirects=False).status_code == 303


def test_ten_failures_for_one_account_lock_it_from_that_address(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    for _ in range(10):
        assert login(stack.client, "ops@example.com", "wrong password").status_code == 401
    throttled = login(stack.client, "ops@example.com")  # from this address, even the right password waits
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 15 * 60
    assert "Too many failed attempts from your address" in throttled.text
    with stack.services.engine.begin() as connection:  # the window passes
        connection.execute(update(auth_throttle).values(window_start=time.time() - 16 * 60))
    assert login(stack.client, "ops@example.com").status_code == 303


def test_thirty_failures_from_one_address_stop_it_for_every_account(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    for number in range(30):
        assert login(stack.client, f"guess{number}@example.com", "wrong password").status_code == 401
    assert login(stack.client, "ops@example.com").status_code == 429


def test_a_success_clears_the_account_count(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    for _ in range(9):
        login(stack.client, "ops@example.com", "wrong password")
    assert login(stack.client, "ops@example.com").status_code == 303
    stack.client.cookies.clear()
    for _ in range(10):
        assert login(stack.client, "ops@example.com", "wrong password").status_code == 401


def test_successful_logins_do_not_count_against_the_address(stack: Stack) -> None:
    """An office behind one address: its users' good logins never add up to a lock-out."""
    add_user(stack, "ops@example.com")
    for number in range(29):
        assert login(stack.client, f"guess{number}@example.com", "wrong password").status_code == 401
    for _ in range(3):
        assert login(stack.client, "ops@example.com").status_code == 303
        stack.client.cookies.clear()


def test_a_tampered_cookie_is_no_session(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    login(stack.client, "ops@example.com")
    value = stack.client.cookies[SESSION_COOKIE]
    stack.client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert stack.client.get("/", follow_redirects=False).status_code == 303


def test_a_new_session_version_revokes_the_session(stack: Stack) -> None:
    user_id = add_user(stack, "ops@example.com")
    login(stack.client, "ops@example.com")
    assert stack.client.get("/").status_code == 200
    with stack.services.engine.begin() as connection:
        accounts.end_sessions(connection, user_id)
    response = stack.client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/"


def test_members_see_their_projects_and_admins_all(stack: Stack) -> None:
    add_user(stack, "admin@example.com", admin=True)
    add_user(stack, "dev@example.com")
    member = TestClient(stack.app)
    login(member, "dev@example.com")
    assert "No projects to show" in member.get("/").text
    with stack.services.engine.begin() as connection:
        assert accounts.add_member(connection, "node", "dev@example.com") is True
        assert accounts.add_member(connection, "node", "dev@example.com") is False
    page = member.get("/").text
    assert "Node" in page and "Python" not in page
    login(stack.client, "admin@example.com")
    page = stack.client.get("/").text
    assert "Node" in page and "Python" in page


def test_can_see_project_follows_membership(stack: Stack) -> None:
    from stackwatch.server.web.access import User, can_see_project

    member = User(id=add_user(stack, "dev@example.com"), email="dev@example.com", is_admin=False)
    admin = User(id=add_user(stack, "admin@example.com", admin=True), email="admin@example.com", is_admin=True)
    with stack.services.engine.begin() as connection:
        accounts.add_member(connection, "node", "dev@example.com")
    with stack.services.engine.connect() as connection:
        assert can_see_project(connection, member, 2) and not can_see_project(connection, member, 1)
        assert can_see_project(connection, admin, 1) and can_see_project(connection, admin, 2)
        assert not can_see_project(connection, admin, 999)


def test_the_cli_manages_members(stack: Stack) -> None:
    add_user(stack, "dev@example.com")
    options = ["--database-url", stack.settings.database_url, "--data-dir", str(stack.settings.data_dir)]
    runner = CliRunner()
    added = runner.invoke(main, ["project", "add-member", "python", "Dev@Example.com", *options])
    assert added.exit_code == 0 and "is now a member of python" in added.output
    member = TestClient(stack.app)
    login(member, "dev@example.com")
    assert "Python" in member.get("/").text
    removed = runner.invoke(main, ["project", "remove-member", "python", "dev@example.com", *options])
    assert removed.exit_code == 0 and "is no longer a member" in removed.output
    assert "Python" not in member.get("/").text
    unknown = runner.invoke(main, ["project", "add-member", "python", "nobody@example.com", *options])
    assert unknown.exit_code == 1 and "no user nobody@example.com" in unknown.output


def test_the_projects_table_counts(stack: Stack) -> None:
    add_user(stack, "ops@example.com", admin=True)
    now = time.time()
    hour = int(now // 3600) * 3600
    with stack.services.engine.begin() as connection:
        for number, status in enumerate(("unresolved", "unresolved", "resolved")):
            issue_id = connection.execute(
                insert(issues)
                .values(
                    project_id=1,
                    grouping_hash=f"h{number}",
                    grouping_version=1,
                    title="ValueError",
                    type="ValueError",
                    level="error",
                    status=status,
                    first_seen=now - 90_000,
                    last_seen=now - 60,
                )
                .returning(issues.c.id)
            ).scalar_one()
            connection.execute(
                insert(issue_hourly),
                [
                    {"issue_id": issue_id, "hour": hour, "count": 3},
                    {"issue_id": issue_id, "hour": hour - 23 * 3600, "count": 4},
                    {"issue_id": issue_id, "hour": hour - 24 * 3600, "count": 1000},  # older than 24 h
                ],
            )
    login(stack.client, "ops@example.com")
    page = stack.client.get("/").text
    python_row = re.search(r"<td><a [^>]*>Python</a>.*?</tr>", page, re.S)
    assert python_row, page
    cells = re.findall(r'<td class="number">(\d+)</td>', python_row.group(0))
    assert cells == ["2", "21"]
    assert time.strftime("%Y-%m-%d", time.gmtime(now - 60)) in python_row.group(0)
    node_row = re.search(r"<td><a [^>]*>Node</a>.*?</tr>", page, re.S)
    assert node_row and "never" in node_row.group(0)


def test_security_headers_and_escaping(stack: Stack) -> None:
    make_project(stack.services, "<script>alert(1)</script>")
    add_user(stack, "ops@example.com", admin=True)
    login_page = stack.client.get("/login")
    assert "script-src 'self'" in login_page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in login_page.headers["content-security-policy"]
    assert login_page.headers["x-content-type-options"] == "nosniff"
    assert login_page.headers["referrer-policy"] == "same-origin"
    login(stack.client, "ops@example.com")
    page = stack.client.get("/")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert foreign_markup(page.text) == []
    refused = stack.client.post("/logout", follow_redirects=False)
    assert refused.status_code == 403 and refused.headers["x-content-type-options"] == "nosniff"
    css = stack.client.get("/static/stackwatch.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_the_api_is_not_behind_the_dashboard_csrf(stack: Stack) -> None:
    response = stack.client.patch(
        "/api/v1/projects/python", json={"scrub_ips": True}, headers={"Authorization": f"Bearer {stack.token}"}
    )
    assert response.status_code == 200
