"""The client address of a real ``stackwatch serve``: forwarded headers only from ``STACKWATCH_TRUSTED_PROXIES``,
for the login throttle and for a user's ``{{auto}}`` IP alike; concurrent wrong logins all counted (both backends).

These need the server process: uvicorn is what reads (or ignores) the forwarded headers.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from stackwatch.server.services import Services
from stackwatch.server.storage import accounts, throttle
from stackwatch.server.storage.schema import auth_throttle
from tests import support
from tests.conftest import ServerFactory, ServerProcess

EMAIL, PASSWORD = "ops@example.com", "correct horse battery"
A, B = "198.51.100.10", "198.51.100.20"  # client addresses as a proxy would report them


def add_user(services: Services) -> None:
    with services.engine.begin() as connection:
        accounts.create_user(connection, EMAIL, PASSWORD, admin=True)


def login_client(server: ServerProcess, forwarded_for: str | None) -> tuple[httpx.Client, dict[str, str]]:
    """A browser-like client that has the login page (and its CSRF cookie), and the form to post."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    client = httpx.Client(base_url=server.base_url, headers=headers, timeout=30)
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert match
    return client, {"email": EMAIL, "next": "/", "csrf_token": match.group(1)}


def login(server: ServerProcess, password: str, forwarded_for: str | None = None) -> httpx.Response:
    client, fields = login_client(server, forwarded_for)
    try:
        return client.post("/login", data={**fields, "password": password})
    finally:
        client.close()


def auto_ip(server: ServerProcess, forwarded_for: str) -> str:
    """The address a ``{{auto}}`` user IP became, for an event sent with this X-Forwarded-For."""
    event = support.exception_event(user={"id": "u1", "ip_address": "{{auto}}"})
    sent = httpx.post(
        f"{server.base_url}/api/1/envelope/",
        content=support.event_envelope(event),
        headers={"X-Sentry-Auth": support.AUTH, "X-Forwarded-For": forwarded_for},
    )
    assert sent.status_code == 200, sent.text
    server.wait_digested()
    stored = httpx.get(
        f"{server.base_url}/api/v1/events/{event['event_id']}", headers={"Authorization": f"Bearer {server.token}"}
    )
    assert stored.status_code == 200, stored.text
    return str(stored.json()["data"]["user"]["ip_address"])


def test_wrong_passwords_from_one_address_never_lock_out_another(
    start_server: ServerFactory, services: Services
) -> None:
    server = start_server(STACKWATCH_TRUSTED_PROXIES="127.0.0.1")
    add_user(services)
    for _ in range(10):
        assert login(server, "wrong password", A).status_code == 401
    refused = login(server, PASSWORD, A)  # A is past its limit: even the right password waits
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 15 * 60
    assert "Too many failed attempts from your address" in refused.text
    assert login(server, PASSWORD, B).status_code == 303  # B is not affected
    assert auto_ip(server, "203.0.113.7") == "203.0.113.7"
    # A client's own X-Forwarded-For is kept on the left by proxies: the nearest untrusted address counts.
    assert auto_ip(server, "192.0.2.66, 203.0.113.8") == "203.0.113.8"


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"], ids=["none-trusted", "others-trusted"])
def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    start_server: ServerFactory, services: Services, trusted: str
) -> None:
    server = start_server(**({"STACKWATCH_TRUSTED_PROXIES": trusted} if trusted else {}))
    add_user(services)
    for _ in range(10):
        assert login(server, "wrong password", A).status_code == 401
    # Both "addresses" are really 127.0.0.1: the header did not change the count, so B waits too.
    assert login(server, PASSWORD, B).status_code == 429
    assert auto_ip(server, "203.0.113.7") == "127.0.0.1"


def test_concurrent_wrong_logins_are_all_counted(server: ServerProcess, services: Services) -> None:
    add_user(services)
    attempts = 30
    prepared = [login_client(server, None) for _ in range(attempts)]
    start = threading.Barrier(attempts)

    def attempt(number: int) -> int:
        client, fields = prepared[number]
        start.wait()
        try:
            return client.post("/login", data={**fields, "password": f"wrong {number}"}).status_code
        finally:
            client.close()

    with ThreadPoolExecutor(attempts) as pool:
        answers = list(pool.map(attempt, range(attempts)))
    # Exactly the limit got as far as the password check; every attempt is in the count.
    assert sorted(answers) == [401] * throttle.ACCOUNT.limit + [429] * (attempts - throttle.ACCOUNT.limit)
    _, account = throttle.login_counters("127.0.0.1", EMAIL)
    with services.engine.connect() as connection:
        counted = connection.execute(select(auth_throttle.c.failures).where(auth_throttle.c.key == account.key))
        assert counted.scalar_one() == attempts
