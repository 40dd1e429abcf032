"""The "Connect an SDK" page: snippets with the project's real DSN, escaped, for every reader of the project and
no one else; its test-event line sends an event to a real server."""

from __future__ import annotations

import html
import re
import subprocess

import httpx
from markupsafe import escape
from sqlalchemy import update
from starlette.testclient import TestClient

from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import project_keys
from stackwatch.server.web.connect import SNIPPETS, curl_test_event
from tests.conftest import NODE_KEY, PYTHON_KEY, ServerProcess, Stack
from tests.support import foreign_markup
from tests.test_web_auth import add_user, login

PAGE = "/projects/python/connect"


def member(stack: Stack, slug: str = "python", email: str = "dev@example.com") -> TestClient:
    """A reader of ``slug`` only (no administrator)."""
    add_user(stack, email)
    with stack.services.engine.begin() as connection:
        accounts.add_member(connection, slug, email)
    client = TestClient(stack.app)
    assert login(client, email).status_code == 303
    return client


def snippets(page: str) -> dict[str, str]:
    """Each copyable block's text by its element id, as the copy button copies it."""
    found = re.findall(r'<pre id="(snippet-[^"]+)"><code>(.*?)</code></pre>', page, re.DOTALL)
    return {name: html.unescape(text) for name, text in found}


def test_a_reader_sees_every_snippet_with_the_projects_dsn(stack: Stack) -> None:
    client = member(stack)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    dsn = f"{stack.settings.base_url.split('://')[0]}://{PYTHON_KEY}@{stack.settings.base_url.split('://')[1]}/1"
    blocks = snippets(page.text)
    assert blocks["snippet-dsn"] == dsn
    for snippet in SNIPPETS:
        assert dsn in blocks[f"snippet-{snippet.id}"], snippet.id
        assert f'data-copy="snippet-{snippet.id}"' in page.text
    assert 'stackwatch.sdk.init(dsn="' + dsn + '", component=' in blocks["snippet-python"]
    assert "@stackwatch/sdk/sveltekit" in blocks["snippet-sveltekit"]
    assert 'Sentry.init({ dsn: "' + dsn + '" })' in blocks["snippet-sentry-browser"]
    assert blocks["snippet-test"] == curl_test_event(stack.settings.base_url, 1, PYTHON_KEY)
    assert NODE_KEY not in page.text
    # The copy script is a file of the dashboard's own: no inline script under the CSP.
    assert foreign_markup(page.text) == []
    assert '<script src="/static/copy.js" defer></script>' in page.text
    assert client.get("/static/copy.js").status_code == 200


def test_the_dsn_is_the_first_active_key(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        second = accounts.create_key(connection, 1, "second", public_key="secondkey0123456789")
        connection.execute(update(project_keys).where(project_keys.c.public_key == PYTHON_KEY).values(active=False))
    client = member(stack)
    blocks = snippets(client.get(PAGE).text)
    assert f"://{second}@" in blocks["snippet-dsn"] and PYTHON_KEY not in "".join(blocks.values())
    with stack.services.engine.begin() as connection:
        connection.execute(update(project_keys).where(project_keys.c.project_id == 1).values(active=False))
    page = client.get(PAGE)
    assert page.status_code == 200 and snippets(page.text) == {} and "no active key" in page.text


def test_a_project_the_user_may_not_see_is_404_like_a_missing_one(stack: Stack) -> None:
    client = member(stack, "python")
    hidden = client.get("/projects/node/connect")
    missing = client.get("/projects/no-such-project/connect")
    assert hidden.status_code == missing.status_code == 404
    assert NODE_KEY not in hidden.text
    anonymous = TestClient(stack.app).get(PAGE, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")


def test_the_project_name_is_escaped(stack: Stack) -> None:
    markup = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    with stack.services.engine.begin() as connection:
        project = accounts.create_project(connection, f"Shop {markup}")
    add_user(stack, "ops@example.com", admin=True)
    assert login(stack.client, "ops@example.com").status_code == 303
    page = stack.client.get(f"/projects/{project.slug}/connect")
    assert page.status_code == 200
    assert markup not in page.text
    assert str(escape(f"Connect an SDK to Shop {markup}")) in page.text
    assert foreign_markup(page.text) == []


def test_the_navigation_and_the_empty_issue_list_lead_to_the_page(stack: Stack) -> None:
    client = member(stack)
    for path in ("/projects/python/issues", "/projects/python/trends"):
        assert f'href="{PAGE}"' in client.get(path).text, path
    empty = client.get("/projects/python/issues").text
    assert "Connect an SDK</a>" in empty.split('class="empty"', 1)[1]
    assert 'aria-current="page">Connect an SDK' in client.get(PAGE).text


def test_the_test_event_line_sends_an_event_to_a_real_server(server: ServerProcess) -> None:
    command = curl_test_event(server.base_url, 1, PYTHON_KEY)
    sent = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False)
    assert sent.returncode == 0 and '"id"' in sent.stdout, sent.stdout + sent.stderr
    server.wait_digested()
    issues = httpx.get(
        f"{server.base_url}/api/v1/projects/python/issues",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    ).json()
    assert [issue["title"] for issue in issues["data"]] == ["Test event from curl: Stackwatch is connected"]
