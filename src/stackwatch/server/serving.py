"""uvicorn's server, which also ends the dashboard's live streams when asked to stop, and its HTTP limits.

uvicorn waits for the requests in progress before it runs the app's shutdown; a live stream (``web.live``) is a
request that never ends by itself, so it is ended first, when the signal arrives. uvicorn's ``Config`` sets up
uvicorn's own log handlers; they get the redacting filter of :mod:`stackwatch.server.logs` here.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from stackwatch.server import logs
from stackwatch.server.config import Settings
from stackwatch.server.protocol import Limits, protocol_with

__all__ = ["Server", "http_limits"]


def http_limits(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` options: the protocol that enforces the request limits, and the idle timeout."""
    limits = Limits(
        max_header_bytes=settings.max_header_bytes,
        max_header_line_bytes=settings.max_header_line_bytes,
        max_headers=settings.max_headers,
        body_timeout=settings.body_timeout,
    )
    return {"http": protocol_with(limits), "timeout_keep_alive": settings.keepalive_timeout}


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        logs.protect_handlers()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_exit is not None:
            self._on_exit()
        super().handle_exit(sig, frame)
