"""The dashboard's Password page: current password, the new one twice, CSRF; other sessions end (both backends)."""

from __future__ import annotations

import httpx
from starlette.testclient import TestClient

from stackwatch.server.storage import accounts
from tests.conftest import Stack
from tests.test_web_auth import PASSWORD, add_user, csrf_of, login

PAGE = "/account/password"
NEW = "a brand new passphrase"


def change(client: TestClient, current: str, new: str = NEW, again: str | None = None) -> httpx.Response:
    fields = {
        "csrf_token": csrf_of(client.get(PAGE)),
        "current_password": current,
        "new_password": new,
        "new_password_again": new if again is None else again,
    }
    return client.post(PAGE, data=fields, follow_redirects=False)


def test_the_page_is_linked_and_needs_a_login(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    assert stack.client.get(PAGE, follow_redirects=False).headers["location"] == "/login?next=/account/password"
    login(stack.client, "ops@example.com")
    assert f'href="{PAGE}"' in stack.client.get("/").text
    page = stack.client.get(PAGE)
    assert (
        page.status_code == 200 and 'name="current_password"' in page.text and 'name="new_password_again"' in page.text
    )


def test_a_new_password_ends_the_other_sessions_only(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    elsewhere = TestClient(stack.app)
    login(stack.client, "ops@example.com")
    login(elsewhere, "ops@example.com")
    stack.settings.data_dir.mkdir(parents=True, exist_ok=True)
    password_file = stack.settings.data_dir / accounts.ADMIN_PASSWORD_FILE
    password_file.write_text(f"ops@example.com {PASSWORD}\n")

    done = change(stack.client, PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == f"{PAGE}?changed=1"
    assert "Your password was changed" in stack.client.get(done.headers["location"]).text
    assert stack.client.get("/", follow_redirects=False).status_code == 200  # this session goes on
    assert elsewhere.get("/", follow_redirects=False).status_code == 303  # every other one has ended
    assert not password_file.exists()  # it no longer held the password
    fresh = TestClient(stack.app)
    assert login(fresh, "ops@example.com").status_code == 401
    assert login(fresh, "ops@example.com", NEW).status_code == 303


def still_the_old_password(stack: Stack) -> bool:
    with stack.services.engine.connect() as connection:
        return accounts.authenticate(connection, "ops@example.com", PASSWORD) is not None


def test_a_wrong_current_password_or_a_bad_new_one_changes_nothing(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    elsewhere = TestClient(stack.app)
    login(stack.client, "ops@example.com")
    login(elsewhere, "ops@example.com")
    wrong = change(stack.client, "not my password")
    assert wrong.status_code == 400 and "The current password is wrong." in wrong.text
    mismatch = change(stack.client, PASSWORD, again="a different passphrase")
    assert mismatch.status_code == 400 and "not the same" in mismatch.text
    short = change(stack.client, PASSWORD, new="short")
    assert short.status_code == 400 and "at least 8 characters" in short.text
    assert still_the_old_password(stack)
    assert elsewhere.get("/", follow_redirects=False).status_code == 200  # no session ended


def test_a_change_without_the_csrf_token_is_refused(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    login(stack.client, "ops@example.com")
    fields = {"current_password": PASSWORD, "new_password": NEW, "new_password_again": NEW}
    for extra in ({}, {"csrf_token": "x" * 43}):
        refused = stack.client.post(PAGE, data={**fields, **extra}, follow_redirects=False)
        assert refused.status_code == 403 and "security token" in refused.text
    assert still_the_old_password(stack)


def test_wrong_current_passwords_are_throttled_like_logins(stack: Stack) -> None:
    add_user(stack, "ops@example.com")
    login(stack.client, "ops@example.com")
    for _ in range(10):  # the login's own attempt was given back: ten wrong ones are checked
        assert change(stack.client, "guess").status_code == 400
    throttled = change(stack.client, PASSWORD)
    assert throttled.status_code == 429 and 1 <= int(throttled.headers["retry-after"]) <= 15 * 60
    assert "Too many failed attempts" in throttled.text
    assert still_the_old_password(stack)
