"""The data directory is private: mode 0700, and every file in it 0600, from start through digest and stop."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stackwatch.server.config import Settings
from stackwatch.server.storage import db
from tests.conftest import ServerFactory
from tests.raw_support import planted, post


def modes(data_dir: Path) -> dict[str, str]:
    """Every folder and file under the data directory that is not private, with its mode."""
    loose = {}
    for path in [data_dir, *data_dir.rglob("*")]:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:  # a -wal or -shm removed while we looked
            continue
        if mode != (0o700 if path.is_dir() else 0o600):
            loose[str(path.relative_to(data_dir))] = oct(mode)
    return loose


def test_data_directory_and_files_are_private(start_server: ServerFactory, settings: Settings) -> None:
    """Also what an older version left: a 0755 directory and 0644 files are tightened at start, with a log line."""
    data_dir = settings.data_dir
    data_dir.mkdir(exist_ok=True)
    os.chmod(data_dir, 0o755)
    for path in data_dir.iterdir():
        os.chmod(path, 0o644)
    (data_dir / "notes.txt").write_text("left by an operator")
    os.chmod(data_dir / "notes.txt", 0o644)
    server = start_server()
    assert modes(data_dir) == {}
    for i in range(3):
        post(server.base_url, planted(str(i)))
    server.wait_digested()
    assert modes(data_dir) == {}
    server.stop()
    assert modes(data_dir) == {}
    log = (data_dir.parent / f"server-{server.port}.log").read_text()
    assert f"data directory {data_dir} was mode 755, readable by others; it is now 700" in log
    if settings.is_sqlite:
        names = {path.name for path in data_dir.iterdir()}
        assert {"stackwatch.sqlite3", "stackwatch-inbox.sqlite3", "admin-password"} <= names


def test_a_new_sqlite_database_is_created_private(tmp_path: Path) -> None:
    """Whatever command creates it first (``serve`` or an administrative one): its -wal and -shm follow its mode."""
    path = tmp_path / "fresh" / "stackwatch.sqlite3"
    engine = db.connect(f"sqlite:///{path}")
    try:
        db.migrate(engine)
        with engine.connect() as connection:
            assert (path.parent / "stackwatch.sqlite3-wal").exists()
            connection.exec_driver_sql("SELECT 1")
            assert modes(path.parent) == {}
    finally:
        engine.dispose()
