"""The digest worker in a child process of ``stackwatch serve``.

Why a process: Python runs one thread at a time per interpreter. In one process the digest's CPU-bound batches
and ingest's requests take turns on that lock, and every request in flight waits for the digest's turn to end:
ingest p99 at 500 events/s measured 12-16 ms that way, 7.8-8.3 ms with the digest in its own process (see
bench/README.md), and end-to-end throughput rose from ~1,500 to ~1,650 events/s on two cores. The child is
supervised: restarted if it dies, stopped with the server, and it stops by itself if the server is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess

from stackwatch.server.config import Settings

__all__ = ["DigestProcess"]

log = logging.getLogger("stackwatch.digest")

_PR_SET_PDEATHSIG = 1
_RESTART_DELAY = 1.0
_DIGEST_NICENESS = 5


def _die_with_parent() -> None:
    """Have the kernel send SIGTERM when the server dies, even by a ``kill -9`` that no handler could see."""
    with contextlib.suppress(OSError, AttributeError):  # Linux; elsewhere the parent-pid check below suffices
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _child_main(settings: Settings, parent: int) -> None:
    from stackwatch.server import logs
    from stackwatch.server.digest.worker import DigestWorker
    from stackwatch.server.services import open_services
    from stackwatch.server.storage import datadir, running

    # The handler only flips a flag: a handler that took a lock (``Event.set``) could interrupt the main thread
    # while it holds that very lock, and deadlock.
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us itself
    _die_with_parent()
    # Background work: when the two compete for a core, answering an SDK comes first.
    with contextlib.suppress(OSError):
        os.nice(_DIGEST_NICENESS)
    logs.configure(settings.log_level)  # its own: a spawned child starts without the server's logging
    # A spawned child inherits no descriptor, so it takes its own share of the server's lock: a digest that
    # outlives a killed server for a moment still counts as running for `stackwatch restore`.
    with contextlib.suppress(datadir.DataDirError):
        running.hold_shared(settings.data_dir)
    services = open_services(settings, migrate=False)
    # No in-process wake-up from ingest here: poll often, an idle poll is one indexed read.
    worker = DigestWorker(services.digester, services.inbox, poll_interval=0.05)
    worker.start()
    services.dispatcher.start()  # alerts are delivered where they are written: beside the digest
    try:
        while not stopping and os.getppid() == parent:
            time.sleep(0.2)
    finally:
        worker.stop()
        services.dispatcher.stop()
        services.close()


class DigestProcess:
    """Runs the digest in a supervised child process (started with ``spawn``: a fresh, small interpreter)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name="stackwatch-digest-supervisor", daemon=True)
        self._supervisor.start()

    def _spawn(self) -> None:
        self._process = self._context.Process(
            target=_child_main, args=(self._settings, os.getpid()), name="stackwatch-digest", daemon=True
        )
        self._process.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is not None:
                process.join(0.5)
                if process.is_alive() or self._stopping.is_set():
                    continue
                log.warning("digest process exited with %s; restarting it", process.exitcode)
            if not self._stopping.wait(_RESTART_DELAY):
                self._spawn()

    def stop(self, timeout: float = 60.0) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()  # SIGTERM: the child finishes its batch and exits
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(5)
