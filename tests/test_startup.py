"""Faults at start and at run time: a read-only disk, a lost, corrupt or unreachable database, a full disk.

Each start-up fault ends ``stackwatch serve`` (and the other commands) with one line and a non-zero exit, and
leaves the data directory as it was; a fault after the start makes ``/readyz`` answer 503 with the reason and the
REST API 503 instead of 500. The tests run as root, where permission bits stop no write: files and folders are
made immutable (``chattr +i``) or mounted read-only in a mount namespace of their own (``unshare``).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from stackwatch.server.storage import datadir
from tests.conftest import POSTGRES_ADMIN_URL, PYTHON_KEY, ServerFactory, ServerProcess, free_port
from tests.support import event_envelope, message_event

SECRET = {"STACKWATCH_SECRET_KEY": "test-secret-key"}
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def stackwatch(*args: str, env: dict[str, str] | None = None, wrap: list[str] | None = None) -> tuple[int, str]:
    """``python -m stackwatch ARGS`` (optionally under ``wrap``): its exit code and everything it printed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACKWATCH_")}
    command = [*(wrap or []), sys.executable, "-m", "stackwatch", *args]
    done = subprocess.run(command, capture_output=True, text=True, env={**clean, **(env or {})}, timeout=60)
    return done.returncode, (done.stdout + done.stderr).strip()


def assert_one_line_error(code: int, output: str, *expected: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    assert output.startswith("Error: "), output
    for text in expected:
        assert text in output, output


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """The paths cannot be written, not even by root, until the block ends."""
    done: list[Path] = []
    try:
        for path in paths:
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
                pytest.skip("chattr +i does not work here")
            done.append(path)
        yield
    finally:
        for path in done:
            subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite data directory where ``stackwatch serve`` has run and stopped: database, inbox, key, password."""
    data_dir = tmp_path_factory.mktemp("installed") / "data"
    server = ServerProcess(data_dir, f"sqlite:///{data_dir / 'stackwatch.sqlite3'}", free_port(), env={})
    server.env = {"STACKWATCH_SECRET_KEY": ""}  # generated into the data directory, as on a first start
    server.start()
    server.stop()
    names = {p.name for p in data_dir.iterdir()}
    assert {"stackwatch.sqlite3", "stackwatch-inbox.sqlite3", "secret_key", "admin-password", "initialised"} <= names
    return data_dir


@pytest.fixture
def data_dir(installed: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(installed, copy)
    return copy


def serve(data_dir: Path, *extra: str, wrap: list[str] | None = None) -> tuple[int, str]:
    return stackwatch("serve", "--port", str(free_port()), "--data-dir", str(data_dir), *extra, wrap=wrap)


# --- at start ---------------------------------------------------------------------------------------------------


def _read_only_mount(data_dir: Path) -> list[str]:
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m)")
    folder = str(data_dir)
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]


@pytest.mark.parametrize(
    ("fault", "command", "expected"),
    [
        pytest.param(
            "data dir immutable",
            "serve",
            "STACKWATCH_DATA_DIR: cannot write to {data}: Operation not permitted",
            id="serve: data dir immutable",
        ),
        pytest.param(
            "data dir read-only mount",
            "serve",
            "STACKWATCH_DATA_DIR: cannot write to {data}: Read-only file system",
            id="serve: data dir read-only mount",
        ),
        pytest.param(
            "database immutable",
            "serve",
            "the database file {data}/stackwatch.sqlite3 cannot be opened for writing",
            id="serve: database immutable",
        ),
        pytest.param(
            "inbox immutable",
            "serve",
            "the inbox file {data}/stackwatch-inbox.sqlite3 cannot be opened for writing",
            id="serve: inbox immutable",
        ),
        pytest.param(
            "database is a folder",
            "serve",
            "{data}/stackwatch.sqlite3 cannot be opened for writing: Is a directory",
            id="serve: database is a folder",
        ),
        pytest.param(
            "data dir immutable",
            "project",
            "STACKWATCH_DATA_DIR: cannot write to {data}",
            id="project: data dir immutable",
        ),
        pytest.param(
            "database immutable",
            "migrate",
            "the database file {data}/stackwatch.sqlite3 cannot be opened",
            id="migrate: database immutable",
        ),
    ],
)
def test_an_unwritable_data_dir_stops_the_start(data_dir: Path, fault: str, command: str, expected: str) -> None:
    args = {
        "serve": ["serve", "--port", str(free_port())],
        "project": ["project", "create", "Orders"],
        "migrate": ["migrate"],
    }[command]
    wrap = None
    targets: list[Path] = []
    if fault == "data dir immutable":
        targets = [data_dir]
    elif fault == "database immutable":
        targets = [data_dir / "stackwatch.sqlite3"]
    elif fault == "inbox immutable":
        targets = [data_dir / "stackwatch-inbox.sqlite3"]
    elif fault == "data dir read-only mount":
        wrap = _read_only_mount(data_dir)
    elif fault == "database is a folder":
        (data_dir / "stackwatch.sqlite3").unlink()
        (data_dir / "stackwatch.sqlite3").mkdir()
    before = snapshot(data_dir)
    with immutable(*targets):
        code, output = stackwatch(*args, "--data-dir", str(data_dir), wrap=wrap, env=SECRET)
    assert_one_line_error(code, output, expected.format(data=data_dir))
    assert snapshot(data_dir) == before


def test_a_deleted_database_is_not_recreated(data_dir: Path) -> None:
    for name in ("stackwatch.sqlite3", "stackwatch.sqlite3-wal", "stackwatch.sqlite3-shm"):
        (data_dir / name).unlink(missing_ok=True)
    before = snapshot(data_dir)
    for args in (["serve", "--port", str(free_port())], ["project", "create", "Orders"], ["migrate"]):
        code, output = stackwatch(*args, "--data-dir", str(data_dir))
        assert_one_line_error(
            code, output, f"the database {data_dir}/stackwatch.sqlite3 is missing", "secret_key", "--init"
        )
        assert snapshot(data_dir) == before, args  # nothing recreated, the inbox, key and password untouched


def test_init_creates_the_database_deliberately(data_dir: Path) -> None:
    (data_dir / "stackwatch.sqlite3").unlink()
    (data_dir / "stackwatch.sqlite3-wal").write_bytes(b"the lost database's log")
    key = (data_dir / "secret_key").read_bytes()
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACKWATCH_")}
    command = [sys.executable, "-m", "stackwatch", "serve", "--init", "--port", str(port), "--data-dir", str(data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if answers(f"http://127.0.0.1:{port}/readyz"):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"serve --init did not come up (exit {process.poll()})")
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "DSN:" in output and "Traceback" not in output, output
    assert (data_dir / "stackwatch.sqlite3").stat().st_size > 0
    assert (data_dir / "stackwatch.sqlite3-wal.orphaned").read_bytes() == b"the lost database's log"
    assert (data_dir / "secret_key").read_bytes() == key
    assert (data_dir / "stackwatch-inbox.sqlite3").exists()
    assert stackwatch("migrate", "--data-dir", str(data_dir)) == (
        0,
        f"database sqlite:///{data_dir}/stackwatch.sqlite3 is up to date",
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's: a missing file, above
def test_an_emptied_postgresql_database_is_not_initialised_again(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    env = {**SECRET, "STACKWATCH_DATABASE_URL": database_url}
    data_dir.mkdir(mode=0o700)  # serve makes it; an administrative command on PostgreSQL uses one that exists
    assert stackwatch("migrate", "--data-dir", str(data_dir), env=env)[0] == 0  # and leaves the marker there
    assert (data_dir / "initialised").exists()
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')

    for args in (["serve", "--port", str(free_port())], ["project", "create", "Orders"], ["migrate"]):
        code, output = stackwatch(*args, "--data-dir", str(data_dir), env=env)
        assert_one_line_error(code, output, "has no Stackwatch tables", f"{data_dir}/initialised", "--init")
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)

    assert stackwatch("migrate", "--init", "--data-dir", str(data_dir), env=env)[0] == 0
    code, output = stackwatch("project", "create", "Orders", "--data-dir", str(data_dir), env=env)
    assert code == 0 and output.splitlines()[-1].startswith("http://"), output


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(20_000))


def _truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("file", "damage", "expected"),
    [
        ("stackwatch.sqlite3", _garbage, "database sqlite:///{data}/stackwatch.sqlite3: file is not a database"),
        ("stackwatch.sqlite3", _truncated, "database sqlite:///{data}/stackwatch.sqlite3: database disk image is"),
        ("stackwatch-inbox.sqlite3", _garbage, "inbox {data}/stackwatch-inbox.sqlite3: file is not a database"),
    ],
    ids=["garbage database", "truncated database", "garbage inbox"],
)
def test_a_corrupt_database_is_one_line(data_dir: Path, file: str, damage: object, expected: str) -> None:
    for side in data_dir.glob(f"{file}-*"):
        side.unlink()
    assert callable(damage)
    damage(data_dir / file)
    before = snapshot(data_dir)
    code, output = serve(data_dir)
    assert_one_line_error(code, output, expected.format(data=data_dir), "restore it from a backup")
    assert snapshot(data_dir) == before


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/stackwatch", "postgresql://nobody@127.0.0.1/x"])
def test_an_unreachable_postgresql_is_one_line(tmp_path: Path, url: str, postgres_available: bool) -> None:
    if "nobody" in url and not postgres_available:
        pytest.skip("needs a PostgreSQL that refuses the user")
    code, output = stackwatch(
        "serve", "--port", str(free_port()), "--data-dir", str(tmp_path), env={**SECRET, "STACKWATCH_DATABASE_URL": url}
    )
    assert_one_line_error(code, output, "database postgresql://")


# --- at run time ------------------------------------------------------------------------------------------------


def post_event(base_url: str, key: str = PYTHON_KEY, project_id: int = 1) -> httpx.Response:
    body = event_envelope(message_event(f"readiness {uuid.uuid4().hex}"))
    return httpx.post(f"{base_url}/api/{project_id}/envelope/?sentry_key={key}", content=body, timeout=10)


_TRY_WRITE = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    connection.execute("BEGIN IMMEDIATE")
    print("took the write lock")
except sqlite3.OperationalError as exc:
    print(exc)
"""


def test_the_writability_check_leaves_sqlite_locks_alone(tmp_path: Path) -> None:
    """/readyz checks the SQLite files while the server writes them: opening and closing a descriptor of one drops
    every POSIX lock the process holds on it, and a writer in another process then corrupts the file (it did,
    under load: "database disk image is malformed", acknowledged envelopes lost)."""
    path = tmp_path / "stackwatch.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")  # this process holds the write lock
    writer.execute("INSERT INTO t VALUES (1)")
    for _ in range(3):
        assert datadir.unwritable(f"sqlite:///{path}") == []
    other = subprocess.run([sys.executable, "-c", _TRY_WRITE, str(path)], capture_output=True, text=True, timeout=30)
    assert other.stdout.strip() == "database is locked", other.stdout + other.stderr
    writer.execute("COMMIT")
    writer.close()


@SQLITE_ONLY
def test_readyz_says_when_the_inbox_cannot_be_written(server: ServerProcess) -> None:
    assert post_event(server.base_url).status_code == 200
    inbox = server.data_dir / "stackwatch-inbox.sqlite3"
    with immutable(*[p for p in (inbox, inbox.with_name(inbox.name + "-wal")) if p.exists()]):
        assert post_event(server.base_url).status_code == 503
        ready = httpx.get(f"{server.base_url}/readyz", timeout=5)
        assert ready.status_code == 503, ready.text
        reasons = ready.json()["reasons"]
        assert any(r.startswith("inbox: stackwatch-inbox.sqlite3 cannot be written") for r in reasons), reasons
        assert any(r.startswith("inbox: the last write failed") for r in reasons), reasons
        assert str(server.data_dir) not in " ".join(reasons)  # no paths for an unauthenticated caller
    assert post_event(server.base_url).status_code == 200  # a write that succeeds clears it
    assert httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200


def test_readyz_says_when_the_disk_is_full(tmp_path: Path) -> None:
    """A real full disk: the server runs on a small tmpfs of its own mount namespace, which the test fills up."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m)")
    data_dir, port = tmp_path / "data", free_port()
    data_dir.mkdir()
    mount = f'mount -t tmpfs -o size=16m stackwatch-test "{data_dir}" && exec "$@"'
    log = tmp_path / "server.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACKWATCH_")}
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, "sh"]
    command += [sys.executable, "-m", "stackwatch", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**clean, **SECRET})
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not re.search(r"DSN: +http://(\w+)@", log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        key = re.search(r"DSN: +http://(\w+)@", log.read_text()).group(1)  # type: ignore[union-attr]
        while not answers(f"{base_url}/healthz"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert post_event(base_url, key).status_code == 200
        filler = Path(f"/proc/{process.pid}/root") / data_dir.relative_to("/") / "filler"  # inside its namespace
        with filler.open("wb") as handle, pytest.raises(OSError, match="No space left"):
            while True:
                handle.write(b"\0" * 65536)
        assert post_event(base_url, key).status_code == 503
        ready = httpx.get(f"{base_url}/readyz", timeout=5)
        assert ready.status_code == 503, ready.text
        assert any("the last write failed" in r and "the disk is full" in r for r in ready.json()["reasons"])
        filler.unlink()
        assert post_event(base_url, key).status_code == 200
        assert httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def database_unavailable(server: ServerProcess) -> Iterator[None]:
    """SQLite: the database file cannot be written. PostgreSQL: the database takes no connections."""
    if server.database_url.startswith("sqlite"):
        database = server.data_dir / "stackwatch.sqlite3"
        with immutable(*[p for p in (database, database.with_name(database.name + "-wal")) if p.exists()]):
            yield
        return
    name = server.database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def test_the_api_answers_503_when_the_database_is_unavailable(start_server: ServerFactory) -> None:
    server = start_server()
    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"{server.base_url}/api/v1/projects/python"
    assert httpx.patch(url, json={"scrub_emails": True}, headers=headers, timeout=10).status_code == 200
    with database_unavailable(server):
        response = httpx.patch(url, json={"scrub_emails": False}, headers=headers, timeout=30)
        assert response.status_code == 503, response.text
        assert response.json()["detail"].startswith("the database is unavailable: "), response.text
        assert response.headers["retry-after"] == "5"
        ready = httpx.get(f"{server.base_url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["reasons"][0].startswith("database: "), ready.text
    assert httpx.patch(url, json={"scrub_emails": False}, headers=headers, timeout=30).status_code == 200
