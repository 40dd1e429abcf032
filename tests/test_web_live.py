"""Live updates over Server-Sent Events, against ``stackwatch serve``: what the streams say and when, who may
open them, and that an open stream neither outlives its session nor holds up the server's shutdown."""

from __future__ import annotations

import html
import re
import signal
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from tests.conftest import ServerFactory, ServerProcess
from tests.support import AUTH, exception_event, frame

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
TIMEOUT = httpx.Timeout(10, read=30)  # a stream is silent between its messages (keep-alive every 15 s)


def _client(server: ServerProcess, email: str) -> httpx.Client:
    client = httpx.Client(base_url=server.base_url, timeout=TIMEOUT)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    form = {"email": email, "password": PASSWORD, "next": "/", "csrf_token": token.group(1)}
    assert client.post("/login", data=form).status_code == 303
    return client


def _stream_url(page: httpx.Response) -> str:
    match = re.search(r'sse-connect="([^"]+)"', page.text)
    assert match, page.text
    return html.unescape(match.group(1))


def _send(server: ServerProcess, kind: str, value: str = "bad value") -> None:
    event = exception_event(kind, value, [frame("handle", f"    raise {kind}()")])
    headers = {"X-Sentry-Auth": AUTH, "Content-Type": "application/json"}
    response = httpx.post(f"{server.base_url}/api/1/store/", json=event, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


class Stream:
    """The messages of an open event stream, read as they come."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self._context = client.stream("GET", url)
        self.response = self._context.__enter__()
        self._lines = self.response.iter_lines()

    def next_message(self) -> tuple[str, str]:
        """The next ``(event, data)``; comments and ``retry`` lines are skipped."""
        event, data = "message", ""
        for line in self._lines:
            if line == "":
                if data or event != "message":
                    return event, data
                continue
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        raise EOFError("the stream ended")

    def close(self) -> None:
        self._context.__exit__(None, None, None)


@pytest.fixture
def users(services: Services) -> dict[str, int]:
    with services.engine.begin() as connection:
        ids = {
            "ops": accounts.create_user(connection, "ops@example.com", PASSWORD, admin=True),
            "dev": accounts.create_user(connection, "dev@example.com", PASSWORD),
        }
        accounts.add_member(connection, "node", "dev@example.com")
    return ids


@pytest.fixture
def live_server(start_server: ServerFactory, users: dict[str, int]) -> ServerProcess:
    return start_server()


@pytest.fixture
def ops(live_server: ServerProcess) -> Iterator[httpx.Client]:
    with closing(_client(live_server, "ops@example.com")) as client:
        yield client


def _issue_id(client: httpx.Client) -> int:
    rows = client.get("/projects/python/issues").text
    found = re.findall(r'href="/issues/(\d+)"', rows)
    assert found, rows
    return int(found[0])


def test_the_issue_list_hears_of_a_new_issue(live_server: ServerProcess, ops: httpx.Client) -> None:
    _send(live_server, "ValueError")
    live_server.wait_digested()
    page = ops.get("/projects/python/issues")
    url = _stream_url(page)
    assert url.startswith("/projects/python/issues/live?since=")
    stream = Stream(ops, url)
    try:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        _send(live_server, "KeyError", "a new issue")
        event, version = stream.next_message()
        assert event == "changed" and version != url.split("since=")[1]
        metrics = httpx.get(f"{live_server.base_url}/metrics", timeout=10).text
        assert "\nstackwatch_live_streams 1\n" in metrics
    finally:
        stream.close()
    rows = ops.get(re.search(r'hx-get="([^"]+)"', page.text).group(1).replace("&amp;", "&"))  # type: ignore[union-attr]
    assert rows.status_code == 200 and "KeyError" in rows.text and "<html" not in rows.text


def test_the_issue_page_hears_of_new_events_and_status_changes(live_server: ServerProcess, ops: httpx.Client) -> None:
    _send(live_server, "ValueError")
    live_server.wait_digested()
    issue_id = _issue_id(ops)
    url = _stream_url(ops.get(f"/issues/{issue_id}"))
    stream = Stream(ops, url)
    try:
        _send(live_server, "ValueError")  # the same issue
        event, version = stream.next_message()
        assert event == "changed" and version.startswith("2:")
        headers = {"Authorization": f"Bearer {live_server.token}"}
        changed = httpx.patch(
            f"{live_server.base_url}/api/v1/issues/{issue_id}", json={"status": "resolved"}, headers=headers
        )
        assert changed.status_code == 200
        event, version = stream.next_message()
        assert event == "changed" and "resolved" in version
    finally:
        stream.close()
    summary = ops.get(f"/issues/{issue_id}/summary?range=30d")
    assert summary.status_code == 200 and "<html" not in summary.text
    assert 'id="issue-summary"' in summary.text and "per day, last 30 days" in summary.text
    assert '<td class="number">2</td>' in summary.text and "resolved" in summary.text


def test_a_stream_is_only_for_who_may_see_it(live_server: ServerProcess, ops: httpx.Client) -> None:
    _send(live_server, "ValueError")
    live_server.wait_digested()
    issue_id = _issue_id(ops)
    anonymous = httpx.Client(base_url=live_server.base_url, timeout=TIMEOUT)
    with anonymous, closing(_client(live_server, "dev@example.com")) as dev:
        for client in (anonymous, dev):
            assert client.get(f"/issues/{issue_id}/live").status_code == 404
            assert client.get("/projects/python/issues/live").status_code == 404
        own = Stream(dev, "/projects/node/issues/live?since=")  # the member's own project: a stream
        try:
            assert own.response.status_code == 200 and own.next_message()[0] == "changed"
        finally:
            own.close()


def test_a_stream_ends_with_its_session(live_server: ServerProcess, ops: httpx.Client) -> None:
    _send(live_server, "ValueError")
    live_server.wait_digested()
    issue_id = _issue_id(ops)
    page = ops.get(f"/issues/{issue_id}")
    stream = Stream(ops, _stream_url(page))
    try:
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        with closing(_client(live_server, "ops@example.com")) as other:  # the same user, elsewhere
            other_token = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/").text)
            assert other_token
            other.post("/logout", data={"csrf_token": other_token.group(1), "everywhere": "1"})
        assert stream.next_message() == ("gone", "")
        with pytest.raises(EOFError):
            stream.next_message()
    finally:
        stream.close()


def test_an_open_stream_does_not_hold_up_shutdown(live_server: ServerProcess, ops: httpx.Client) -> None:
    stream = Stream(ops, _stream_url(ops.get("/projects/python/issues")))
    assert live_server.process is not None
    try:
        live_server.process.send_signal(signal.SIGTERM)
        with pytest.raises((EOFError, httpx.HTTPError)):
            while True:
                stream.next_message()
        assert live_server.process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    finally:
        stream.close()
    log = (live_server.data_dir.parent / f"server-{live_server.port}.log").read_text()
    # uvicorn cancels what is still running when its graceful shutdown times out; nothing was left to cancel.
    assert "timeout graceful shutdown exceeded" not in log, log
