"""Debian's Chromium driven by Playwright, for the dashboard's browser tests.

``STACKWATCH_TEST_REQUIRE=browser`` (CI) turns a missing Chromium or Playwright into a failure instead of a skip.
Screenshots go to ``STACKWATCH_SCREENSHOTS`` when it is set (``make screenshots`` sets it to ``docs/screenshots``),
else to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, skip_or_fail

CHROMIUM = os.environ.get("STACKWATCH_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"


# Module scope, not session: while Playwright's sync API is open, the process's main thread counts as running an
# asyncio loop, and the tests of other modules that call ``asyncio.run`` would fail in the same worker.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        skip_or_fail("browser", f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("browser", "Playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """One browser page on a server, with what it reported: dialogs, console errors, failed requests."""

    page: Any
    server: ServerProcess
    screenshots: Path
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.server.base_url}{path}"

    def open(self, path: str) -> Any:
        # Not "networkidle": a page with live updates keeps its event stream open.
        return self.page.goto(self.url(path), wait_until="load")

    def login(self, email: str, password: str = PASSWORD) -> None:
        self.open("/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r"^(?!.*/login).*$"))

    def shot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        """No dialog opened and the browser reported no error (a CSP violation would be one)."""
        assert self.dialogs == [], self.dialogs
        assert self.console_errors == [], self.console_errors


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("STACKWATCH_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


def new_tab(chromium: Any, server: ServerProcess, screenshots: Path) -> Iterator[Tab]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Tab(page, server, screenshots)

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if message.type == "error":
            tab.console_errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.console_errors.append(f"page error: {error}"))
    try:
        yield tab
    finally:
        context.close()
