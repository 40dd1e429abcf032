"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests skip when no server answers at ``STACKWATCH_TEST_POSTGRES`` (default: the local one), unless
``STACKWATCH_TEST_REQUIRE`` names ``postgres`` (CI sets it), in which case they fail instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.testclient import TestClient

from stackwatch.server.app import create_app
from stackwatch.server.config import Settings, load_settings
from stackwatch.server.services import Services, open_services
from stackwatch.server.storage import accounts, db

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "sdk-envelopes"  # real SDK captures, kept in the repository
POSTGRES_ADMIN_URL = os.environ.get("STACKWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PYTHON_KEY = "abc123publickey"
NODE_KEY = "nodepublickey"


def required(what: str) -> bool:
    return what in os.environ.get("STACKWATCH_TEST_REQUIRE", "").replace(",", " ").split()


def skip_or_fail(what: str, reason: str) -> None:
    if required(what):
        pytest.fail(f"{reason} (required by STACKWATCH_TEST_REQUIRE)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'stackwatch.sqlite3'}"
        return
    if not postgres_available:
        skip_or_fail("postgres", f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}")
    name = f"stackwatch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database, unmigrated (for migration tests)."""
    engine = db.connect(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    env = {"STACKWATCH_SECRET_KEY": "test-secret-key"}
    return load_settings({"data_dir": str(tmp_path / "data"), "database_url": database_url}, env)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    opened = open_services(settings)
    try:
        yield opened
    finally:
        opened.close()


@dataclass
class Stack:
    """An in-process server (ingest + API, no background digest) and its parts."""

    settings: Settings
    services: Services
    app: FastAPI
    client: TestClient
    token: str

    def digest(self) -> int:
        return self.services.digester.drain()

    def api(self, path: str, **params: object) -> httpx.Response:
        return self.client.get(f"/api/v1{path}", params=params, headers={"Authorization": f"Bearer {self.token}"})


def make_project(services: Services, name: str, public_key: str | None = None) -> accounts.ProjectInfo:
    with services.engine.begin() as connection:
        return accounts.create_project(connection, name, public_key=public_key)


def seed(services: Services) -> str:
    """The fixture projects ("python" with PYTHON_KEY, "node" with NODE_KEY); returns a new API token."""
    make_project(services, "Python", PYTHON_KEY)
    make_project(services, "Node", NODE_KEY)
    with services.engine.begin() as connection:
        return accounts.create_token(connection, "tests")


@pytest.fixture
def stack(settings: Settings, services: Services) -> Iterator[Stack]:
    token = seed(services)
    app = create_app(settings, services, run_worker=False)
    with TestClient(app) as client:
        yield Stack(settings, services, app, client, token)


@pytest.fixture
def team(stack: Stack) -> Stack:
    """An administrator, a member of "python", and a member of "node" only."""
    from tests.test_web_auth import add_user

    add_user(stack, "admin@example.com", admin=True)
    add_user(stack, "dev@example.com")
    add_user(stack, "other@example.com")
    with stack.services.engine.begin() as connection:
        accounts.add_member(connection, "python", "dev@example.com")
        accounts.add_member(connection, "node", "other@example.com")
    return stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``stackwatch serve`` in a child process, as a user runs it."""

    data_dir: Path
    database_url: str
    port: int
    token: str = ""  # a REST API token for this server's database
    env: dict[str, str] = field(default_factory=dict)  # extra ``STACKWATCH_*`` settings, on every start
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "STACKWATCH_SECRET_KEY": "test-secret-key", "STACKWATCH_LOG_LEVEL": "warning", **self.env}
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stackwatch",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--database-url",
                self.database_url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {log.name}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait_digested(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = httpx.get(f"{self.base_url}/readyz", timeout=5)
            if response.status_code == 200 and response.json()["inbox_backlog"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("the inbox did not drain in time")


class ServerFactory:
    """Starts servers on the test's database, with the fixture projects and an API token."""

    def __init__(self, settings: Settings, token: str):
        self.settings = settings
        self.token = token
        self.started: list[ServerProcess] = []

    def __call__(self, **env: str) -> ServerProcess:
        proc = ServerProcess(self.settings.data_dir, self.settings.database_url, free_port(), self.token, env)
        self.started.append(proc)
        proc.start()
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


@pytest.fixture
def start_server(settings: Settings, services: Services) -> Iterator[ServerFactory]:
    """``start_server(STACKWATCH_MAX_BODY_BYTES="2MB", …)`` → a running server with those settings."""
    token = seed(services)
    factory = ServerFactory(settings, token)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def server(start_server: ServerFactory) -> ServerProcess:
    """A running server process with the fixture projects; ``server.token`` is an API token."""
    return start_server()


# The browser fixtures, defined once for every test module (Playwright's sync API runs one instance per process).
from tests.browser import chromium, screenshots  # noqa: E402, F401
