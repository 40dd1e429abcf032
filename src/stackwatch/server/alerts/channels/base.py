"""The one contract every channel keeps: ``send(notification)`` returns when delivered, or raises ``ChannelError``.

A channel is built from its stored configuration (a JSON object) by its module's ``build(config, settings)``;
``validate(config)`` checks and normalizes a configuration before it is stored (``ValueError`` with a message a
user can act on); ``public(config)`` is the configuration as the API shows it, secrets removed.
"""

from __future__ import annotations

from typing import Any, Protocol

from stackwatch.server.alerts.message import Notification

__all__ = ["Channel", "ChannelError", "ChannelModule"]


class ChannelError(Exception):
    """Delivery failed. ``permanent``: retrying the same notification cannot succeed (bad address, 4xx)."""

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    kind: str

    def send(self, notification: Notification) -> None: ...


class ChannelModule(Protocol):
    KIND: str

    def validate(self, config: dict[str, Any]) -> dict[str, Any]: ...

    def public(self, config: dict[str, Any]) -> dict[str, Any]: ...

    def build(self, config: dict[str, Any], settings: Any) -> Channel: ...
