"""uvicorn's server, which also ends the dashboard's live streams when asked to stop.

uvicorn waits for the requests in progress before it runs the app's shutdown; a live stream (``web.live``) is a
request that never ends by itself, so it is ended first, when the signal arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType

import uvicorn

__all__ = ["Server"]


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_exit is not None:
            self._on_exit()
        super().handle_exit(sig, frame)
