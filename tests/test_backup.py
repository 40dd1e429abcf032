"""``stackwatch backup`` and ``stackwatch restore``: a copy taken while a server runs serves the same issues.

The main test runs real servers and the real ``sentry-sdk``; the others run the commands on small data
directories, and one holds the server's lock from a child process to show what a killed server leaves.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from stackwatch.cli import main
from stackwatch.server.storage import backup, restore, running
from tests.conftest import PYTHON_KEY, ServerFactory, ServerProcess, free_port
from tests.support import event_envelope, exception_event, message_event

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# argv: DSN, a suffix, how many errors, their type. Captures the errors and one message, then flushes.
SDK_SCRIPT = r"""
import builtins
import sys
import sentry_sdk

dsn, suffix, errors, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), getattr(builtins, sys.argv[4])
sentry_sdk.init(dsn=dsn, release="meshhook@2.0.0", shutdown_timeout=10)


def deliver(number):
    raise kind(f"webhook refused ({suffix})")


for number in range(errors):
    try:
        deliver(number)
    except kind:
        sentry_sdk.capture_exception()
sentry_sdk.capture_message(f"lease lost ({suffix})", level="warning")
sentry_sdk.flush(timeout=10)
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: its own process, stdout and stderr apart."""
    command = [sys.executable, "-m", "stackwatch", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)


def sdk_send(server: ServerProcess, suffix: str, errors: int, kind: str) -> None:
    dsn = f"http://{PYTHON_KEY}@127.0.0.1:{server.port}/1"
    command = [sys.executable, "-c", SDK_SCRIPT, dsn, suffix, str(errors), kind]
    child = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr


def issues(server: ServerProcess) -> dict[str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"{server.base_url}/api/v1/projects/python/issues"
    response = httpx.get(url, params={"limit": 100}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {issue["title"]: issue for issue in response.json()["data"]}


def event_ids(server: ServerProcess, issue_id: int) -> list[str]:
    headers = {"Authorization": f"Bearer {server.token}"}
    url = f"{server.base_url}/api/v1/issues/{issue_id}/events"
    response = httpx.get(url, params={"limit": 100}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return [event["event_id"] for event in response.json()["data"]]


class Stream:
    """Envelopes posted one after another to a server until stopped; the ids it acknowledged, in order."""

    def __init__(self, server: ServerProcess, title: str, limit: int = 80):
        self.server, self.title, self.limit = server, title, limit
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        url = f"{self.server.base_url}/api/1/envelope/"
        auth = {"X-Sentry-Auth": f"Sentry sentry_key={PYTHON_KEY}, sentry_version=7"}
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and len(self.acknowledged) < self.limit:
                event = message_event(self.title)
                response = client.post(url, content=event_envelope(event), headers=auth)
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text}")
                else:
                    self.acknowledged.append(event["event_id"])
                time.sleep(0.01)

    def __enter__(self) -> Stream:
        self._thread.start()
        while not self.acknowledged and not self.failures:
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.mark.slow
@SQLITE_ONLY
def test_a_backup_taken_while_serving_restores_the_same_issues_and_digests_its_inbox(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    first = start_server()
    sdk_send(first, suffix, errors=3, kind="ConnectionError")
    first.wait_digested()
    digested = issues(first)
    assert {digested[f"ConnectionError: webhook refused ({suffix})"]["count"], len(digested)} == {3, 2}
    first.stop()

    # Ingest alone: what it accepts waits in the inbox, undigested, when the backup is taken.
    ingest = start_server(STACKWATCH_ROLE="ingest")
    sdk_send(ingest, f"{suffix}-waiting", errors=2, kind="TimeoutError")  # another issue: another type
    target = tmp_path / "backups" / "nightly"
    options = ["--data-dir", str(ingest.data_dir)]
    with Stream(ingest, f"during the backup ({suffix})") as stream:
        before = len(stream.acknowledged)
        taken = cli("backup", str(target), *options)
        refused = cli("restore", str(target), "--force", *options)
        after = len(stream.acknowledged)
    assert taken.returncode == 0, taken.stderr
    assert "backup: database 100% (" in taken.stderr and "backup: inbox 100% (" in taken.stderr
    assert not stream.failures, stream.failures  # the server answered every envelope while it was copied
    assert after > before  # and envelopes arrived during the backup
    assert refused.returncode == 1 and "a Stackwatch server is running on" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    ingest.stop()

    manifest = json.loads((target / backup.MANIFEST).read_text())
    assert manifest["schema_revision"] and manifest["inbox_backlog"] >= 3 + before
    assert {entry["name"] for entry in manifest["files"]} >= {backup.DATABASE_FILE, backup.INBOX_FILE}
    assert oct(target.stat().st_mode & 0o777) == "0o700"
    assert {oct(path.stat().st_mode & 0o777) for path in target.iterdir()} == {"0o600"}

    fresh = tmp_path / "restored"
    restored_run = cli("restore", str(target), "--data-dir", str(fresh))
    assert restored_run.returncode == 0, restored_run.stderr
    restored = ServerProcess(fresh, f"sqlite:///{fresh / 'stackwatch.sqlite3'}", free_port(), first.token)
    start_server.started.append(restored)
    restored.start()
    restored.wait_digested()
    served = issues(restored)

    for title, issue in digested.items():
        same = {key: served[title][key] for key in ("id", "count", "first_seen", "level")}
        assert same == {key: issue[key] for key in ("id", "count", "first_seen", "level")}, title
    # The envelopes that waited in the copied inbox are digested after the restore.
    assert served[f"TimeoutError: webhook refused ({suffix}-waiting)"]["count"] == 2
    assert served[f"lease lost ({suffix}-waiting)"]["count"] == 1
    # Of the envelopes that arrived during the backup: every one acknowledged before it began, none twice.
    during = event_ids(restored, served[f"during the backup ({suffix})"]["id"])
    assert len(during) == len(set(during)) == served[f"during the backup ({suffix})"]["count"]
    assert set(stream.acknowledged[:before]) <= set(during) <= set(stream.acknowledged)


def test_the_copy_finishes_and_is_one_snapshot_while_the_server_writes(installed: Path, tmp_path: Path) -> None:
    """A copy in steps restarts at every write by another connection unless it reads from one snapshot; from
    one, it ends, and holds both files as they were when it began."""
    database, inbox = installed / "stackwatch.sqlite3", installed / "stackwatch-inbox.sqlite3"
    writers = [sqlite3.connect(path, isolation_level=None) for path in (database, inbox)]
    steps: list[str] = []

    def write_between_steps(what: str, done: int, total: int) -> None:
        steps.append(what)
        assert len(steps) < 1000, "the copy keeps restarting"
        writers[0].execute("INSERT INTO digest_state (name, value) VALUES (?, 0)", (f"marker-{len(steps)}",))
        writers[1].execute("INSERT INTO inbox (project_id, received_at, body) VALUES (1, 0, x'00')")

    manifest = backup.take_backup(
        installed, f"sqlite:///{database}", tmp_path / "copy", progress=write_between_steps, step_pages=4
    )
    assert steps.count("database") > 10 and "inbox" in steps  # copied in steps, written between them
    with sqlite3.connect(tmp_path / "copy" / backup.DATABASE_FILE) as copy:
        assert copy.execute("SELECT count(*) FROM digest_state WHERE name LIKE 'marker-%'").fetchone()[0] == 0
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    with sqlite3.connect(tmp_path / "copy" / backup.INBOX_FILE) as copy:
        assert copy.execute("SELECT count(*) FROM inbox").fetchone()[0] == 1 == manifest["inbox_backlog"]
    assert writers[1].execute("SELECT count(*) FROM inbox").fetchone()[0] == 1 + len(steps)


# --- the commands' refusals --------------------------------------------------------------------------------------


def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner(env={**{name: None for name in os.environ if name.startswith("STACKWATCH_")}, **(env or {})})
    result = runner.invoke(main, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    if code:
        assert isinstance(result.exception, SystemExit), result.exception  # a message, not a traceback
    return result


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A migrated data directory with a generated secret key and one envelope waiting in its inbox."""
    data_dir = tmp_path / "data"
    run("migrate", "--data-dir", str(data_dir))
    from stackwatch.server.config import load_settings
    from stackwatch.server.services import open_services

    settings = load_settings({"data_dir": str(data_dir)}, {})  # the key is generated into the data directory
    services = open_services(settings)
    try:
        body = services.inbox.seal(event_envelope(exception_event()), 1)  # sealed, as ingest stores it
        with services.engine.connect() as connection:
            services.inbox.requeue(connection, [{"project_id": 1, "received_at": 0.0, "client_ip": None, "body": body}])
    finally:
        services.close()
    return data_dir


def test_backup_holds_the_state_a_restore_needs(installed: Path, tmp_path: Path) -> None:
    result = run("backup", str(tmp_path / "copy"), "--data-dir", str(installed))
    manifest = json.loads((tmp_path / "copy" / backup.MANIFEST).read_text())
    names = {entry["name"] for entry in manifest["files"]}
    assert names == {backup.DATABASE_FILE, backup.INBOX_FILE, "secret_key", "initialised"}
    assert manifest["secret_key_included"] and manifest["inbox_backlog"] == 1
    assert "1 envelopes waiting" in result.stdout and "note:" not in result.stderr
    assert (tmp_path / "copy" / "secret_key").read_bytes() == (installed / "secret_key").read_bytes()


def test_restore_refuses_a_key_that_would_not_open_the_waiting_envelopes(installed: Path, tmp_path: Path) -> None:
    run("backup", str(tmp_path / "copy"), "--data-dir", str(installed))
    manifest = json.loads((tmp_path / "copy" / backup.MANIFEST).read_text())
    key = (installed / "secret_key").read_text().strip()
    assert manifest["secret_key_fingerprint"] == backup.key_fingerprint(key)
    assert key not in (tmp_path / "copy" / backup.MANIFEST).read_text()
    other = {"STACKWATCH_SECRET_KEY": "not-the-key-of-this-backup"}
    target = tmp_path / "elsewhere"
    refused = run("restore", str(tmp_path / "copy"), "--data-dir", str(target), code=1, env=other)
    assert "not the one the backup was taken with" in refused.output and "1 envelopes" in refused.output
    assert not (target / "stackwatch.sqlite3").exists()
    accepted = run("restore", str(tmp_path / "copy"), "--data-dir", str(target), "--other-key", env=other)
    assert "note: the secret key in use (STACKWATCH_SECRET_KEY)" in accepted.stderr
    assert (target / "stackwatch.sqlite3").exists()
    same = {"STACKWATCH_SECRET_KEY": key}  # the key it had, given by the environment now: nothing to say
    result = run("restore", str(tmp_path / "copy"), "--data-dir", str(tmp_path / "third"), env=same)
    assert "not the one" not in result.stderr


def test_backup_refuses_a_non_empty_target_and_a_bad_path(installed: Path, tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    result = run("backup", str(occupied), "--data-dir", str(installed), code=1)
    assert f"{occupied} is not empty" in result.stderr
    assert [path.name for path in occupied.iterdir()] == ["notes.txt"]

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert "exists and is not a directory" in run("backup", str(a_file), "--data-dir", str(installed), code=1).stderr
    under_a_file = a_file / "backup"
    assert (
        f"cannot create {under_a_file}" in run("backup", str(under_a_file), "--data-dir", str(installed), code=1).stderr
    )

    nothing = tmp_path / "no-install"
    result = run("backup", str(tmp_path / "b"), "--data-dir", str(nothing), code=1)
    assert "there is no database at" in result.stderr and not (tmp_path / "b").exists()

    # An empty folder is taken, and made private: it will hold the secret key.
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    os.chmod(empty, 0o755)
    run("backup", str(empty), "--data-dir", str(installed))
    assert oct(empty.stat().st_mode & 0o777) == "0o700"


def test_restore_refuses_what_is_not_a_sound_backup(installed: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    run("backup", str(copy), "--data-dir", str(installed))
    fresh = ["--data-dir", str(tmp_path / "fresh")]
    assert "is not a directory" in run("restore", str(tmp_path / "missing"), *fresh, code=1).stderr
    assert "has no manifest.json" in run("restore", str(tmp_path), *fresh, code=1).stderr

    database = copy / backup.DATABASE_FILE
    damaged = bytearray(database.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    database.write_bytes(bytes(damaged))
    assert "not the file the manifest describes" in run("restore", str(copy), *fresh, code=1).stderr

    # Damage the manifest also describes: SQLite's integrity check finds it.
    damaged[:] = database.read_bytes()
    page = 4096
    damaged[page * 2 : page * 3] = b"\x0d" + bytes(page - 1)  # a table page with garbage cells
    database.write_bytes(bytes(damaged))
    manifest_path = copy / backup.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    entry = next(entry for entry in manifest["files"] if entry["name"] == backup.DATABASE_FILE)
    entry.update(size=database.stat().st_size, sha256=backup.file_digest(database))
    manifest_path.write_text(json.dumps(manifest))
    result = run("restore", str(copy), *fresh, code=1)
    assert "integrity_check" in result.stderr or "malformed" in result.stderr, result.stderr
    assert not (tmp_path / "fresh" / "stackwatch.sqlite3").exists()


def files_of(data_dir: Path) -> dict[str, bytes]:
    """The installation's files and their contents (the lock file, which restore itself makes, aside)."""
    return {path.name: path.read_bytes() for path in data_dir.iterdir() if path.name != running.LOCK_FILE}


def test_restore_replaces_an_install_only_when_forced_and_keeps_it_on_failure(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"
    run("backup", str(copy), "--data-dir", str(installed))
    other = tmp_path / "other"
    run("migrate", "--data-dir", str(other))
    before = files_of(other)

    result = run("restore", str(copy), "--data-dir", str(other), code=1)
    assert "holds an installation (stackwatch.sqlite3" in result.stderr and "--force" in result.stderr

    def fail(_folder: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(restore, "_sync_folder", fail)  # after every rename: all of them are undone
    result = run("restore", str(copy), "--force", "--data-dir", str(other), code=1)
    assert "the installation is unchanged: Input/output error" in result.stderr
    assert files_of(other) == before
    monkeypatch.undo()

    result = run("restore", str(copy), "--force", "--data-dir", str(other))
    assert "stackwatch.sqlite3.replaced-" in result.stdout
    assert (other / "secret_key").read_bytes() == (installed / "secret_key").read_bytes()
    assert (other / "stackwatch-inbox.sqlite3").read_bytes() == (copy / backup.INBOX_FILE).read_bytes()
    assert {oct(path.stat().st_mode & 0o777) for path in other.iterdir()} == {"0o600"}


HOLDER = (
    "import sys, time; from pathlib import Path; from stackwatch.server.storage import running; "
    "running.hold_shared(Path(sys.argv[1])); print('held', flush=True); time.sleep(120)"
)


def test_restore_refuses_while_a_server_holds_the_data_directory_and_not_after_it_is_killed(
    installed: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    run("backup", str(copy), "--data-dir", str(installed))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(installed)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        result = run("restore", str(copy), "--force", "--data-dir", str(installed), code=1)
        assert f"a Stackwatch server is running on {installed}" in result.stderr
    finally:
        holder.send_signal(signal.SIGKILL)  # as `kill -9` leaves a server: no chance to clean up
        holder.wait(10)
    run("restore", str(copy), "--force", "--data-dir", str(installed))


def test_serve_refuses_to_start_during_a_restore(installed: Path) -> None:
    with running.exclusive(installed):
        started = cli("serve", "--port", str(free_port()), "--data-dir", str(installed))
    assert started.returncode == 1
    assert f"a restore into {installed} is in progress" in started.stderr and "Traceback" not in started.stderr


def test_on_postgresql_both_commands_name_postgresqls_tools(tmp_path: Path) -> None:
    url = "postgresql://stackwatch:hunter2@db.internal:5432/stackwatch"
    options = ["--database-url", url, "--data-dir", str(tmp_path / "data")]
    result = run("backup", str(tmp_path / "copy"), *options, code=1)
    assert "pg_dump --format=custom" in result.stderr and "the inbox of envelopes not yet digested" in result.stderr
    assert "hunter2" not in result.stderr and "STACKWATCH_SECRET_KEY" in result.stderr
    result = run("restore", str(tmp_path / "copy"), *options, code=1)
    assert "pg_restore --clean --if-exists" in result.stderr and "hunter2" not in result.stderr
    assert not (tmp_path / "copy").exists()
