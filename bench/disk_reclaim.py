"""What giving a drained inbox back costs: how long each step holds the inbox's write lock.

Fills the SQLite inbox with N envelopes (real ingest, in process), digests them, then runs the idle housekeeping
(incremental vacuum in steps, then a TRUNCATE checkpoint) and prints the file sizes and the longest step.
``python -m bench.disk_reclaim [N]`` (default 5000, ~26 MB).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from stackwatch.server.app import create_app
from stackwatch.server.config import load_settings
from stackwatch.server.services import open_services
from stackwatch.server.storage import accounts, db, disk


def _size(path: Path) -> float:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()) / (1 << 20)


def main(count: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="stackwatch-bench-")) / "data"
    settings = load_settings({"data_dir": str(data)}, {"STACKWATCH_SECRET_KEY": "bench"})
    services = open_services(settings)
    with services.engine.begin() as connection:
        accounts.create_project(connection, "bench", public_key="benchkey")
    auth = {"X-Sentry-Auth": "Sentry sentry_key=benchkey, sentry_version=7"}
    padding = os.urandom(2000).hex()
    with TestClient(create_app(settings, services, run_worker=False)) as client:
        for i in range(count):
            body = b'{}\n{"type":"event"}\n{"message":"m%d","extra":{"p":"%s"}}\n' % (i, padding.encode())
            assert client.post("/api/1/envelope/", content=body, headers=auth).status_code == 200
    path = db.inbox_path(settings.database_url)
    assert path is not None
    print(f"inbox filled with {count} envelopes: {_size(path):.1f} MB")
    services.digester.drain()
    print(f"drained: {_size(path):.1f} MB")
    steps = []
    with services.inbox._write_engine.connect() as connection:  # the inbox's own engine
        while True:
            started = time.perf_counter()
            if disk.reclaim(connection, disk.RECLAIM_STEP) == 0:
                break
            steps.append(time.perf_counter() - started)
        started = time.perf_counter()
        disk.checkpoint(connection)
        checkpoint = time.perf_counter() - started
    steps.sort()
    print(
        f"reclaimed in {len(steps)} steps of {disk.RECLAIM_STEP} pages: median {steps[len(steps) // 2] * 1e3:.1f} ms,"
        f" longest {steps[-1] * 1e3:.1f} ms; checkpoint {checkpoint * 1e3:.1f} ms; now {_size(path):.2f} MB"
    )
    services.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
