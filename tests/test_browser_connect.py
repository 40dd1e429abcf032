"""The "Connect an SDK" page in Debian's Chromium: a copy button puts its snippet, with the project's DSN, on the
clipboard, under the dashboard's Content-Security-Policy (a violation would be a console error)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from tests.browser import PASSWORD, Tab
from tests.conftest import PYTHON_KEY, ServerFactory, ServerProcess


@pytest.fixture
def reader(start_server: ServerFactory, services: Services) -> ServerProcess:
    """A server with a reader of the python project (no administrator)."""
    with services.engine.begin() as connection:
        accounts.create_user(connection, "dev@example.com", PASSWORD)
        accounts.add_member(connection, "python", "dev@example.com")
    return start_server()


@pytest.fixture
def tab(chromium: Any, reader: ServerProcess, screenshots: Path) -> Iterator[Tab]:
    # The clipboard permissions a user grants by clicking; http://127.0.0.1 is a secure context.
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    opened = Tab(page, reader, screenshots)
    page.on("console", lambda message: message.type == "error" and opened.console_errors.append(message.text))
    page.on("pageerror", lambda error: opened.console_errors.append(f"page error: {error}"))
    try:
        yield opened
    finally:
        context.close()


def test_the_copy_button_puts_the_snippet_on_the_clipboard(tab: Tab, reader: ServerProcess) -> None:
    page = tab.page
    tab.login("dev@example.com")
    tab.open("/projects/python/issues")
    page.click("td.empty a")  # the empty list says where to go next
    page.wait_for_url("**/projects/python/connect")
    dsn = page.inner_text("#snippet-dsn").strip()
    assert dsn == f"http://{PYTHON_KEY}@127.0.0.1:{reader.port}/1"
    tab.shot("connect")

    page.click('button[data-copy="snippet-python"]')
    page.wait_for_function("document.querySelector('button[data-copy=\"snippet-python\"]').textContent === 'Copied'")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.inner_text("#snippet-python")
    assert f'stackwatch.sdk.init(dsn="{dsn}", component="orchestrator")' in copied

    page.click('button[data-copy="snippet-test"]')
    page.wait_for_function("document.querySelector('.copy-status').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()").startswith("printf '{}\\n")
    tab.assert_clean()
