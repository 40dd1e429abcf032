"""The channel registry: every channel module by its ``KIND``.

A new channel is one module in this package keeping the contract in :mod:`.base` and one line in ``MODULES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from stackwatch.server.alerts.channels import apprise_url, email, slack, webhook
from stackwatch.server.alerts.channels.base import Channel, ChannelError, ChannelModule
from stackwatch.server.config import Settings

__all__ = [
    "MODULES",
    "WAITING_MESSAGES",
    "Channel",
    "ChannelError",
    "ChannelModule",
    "get",
    "validate",
    "waiting_for",
    "waiting_kinds",
]

MODULES: dict[str, ChannelModule] = {
    email.KIND: email,
    slack.KIND: slack,
    webhook.KIND: webhook,
    apprise_url.KIND: apprise_url,
}


class _Validate(Protocol):
    def __call__(self, config: dict[str, Any], *, settings: Settings | None = None) -> dict[str, Any]: ...


# Each module's validate() also takes the settings, to refuse private targets when they are not allowed (link-local
# and metadata targets are refused whatever the settings; see alerts/targets.py).
_VALIDATE: dict[str, _Validate] = {
    email.KIND: email.validate,
    slack.KIND: slack.validate,
    webhook.KIND: webhook.validate,
    apprise_url.KIND: apprise_url.validate,
}


# What a channel of a kind needs from the server's settings before it can send anything (``None``: nothing). While
# it is missing, the channel *waits*: the digest writes nothing for it to the outbox and the dispatcher sends it
# nothing, so it neither fails nor turns unhealthy (docs/alerts.md#e-mail-needs-smtp).
_WAITING_FOR: dict[str, Callable[[Settings], str | None]] = {email.KIND: email.waiting_for}
# The waiting state as the API names it, and the sentence that says how to end it.
WAITING_MESSAGES = {
    "smtp": "needs SMTP: e-mail is sent once the server has an SMTP server (STACKWATCH_SMTP_HOST and the other "
    "STACKWATCH_SMTP_* settings, then restart)",
}


def waiting_for(kind: str, settings: Settings | None) -> str | None:
    """What a channel of ``kind`` waits for under ``settings`` (``"smtp"``), or ``None`` when it can send."""
    check = _WAITING_FOR.get(kind)
    return None if check is None or settings is None else check(settings)


def waiting_kinds(settings: Settings) -> frozenset[str]:
    """The channel kinds that cannot send anything under ``settings``."""
    return frozenset(kind for kind in MODULES if waiting_for(kind, settings) is not None)


def get(kind: str) -> ChannelModule:
    """The module for ``kind``; ``ValueError`` naming the known kinds otherwise."""
    try:
        return MODULES[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown channel kind {kind!r}; expected one of {', '.join(MODULES)}") from None


def validate(kind: str, config: dict[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """The stored form of ``config`` for a channel of ``kind``, or ``ValueError`` with a message for the user.

    Link-local and metadata targets are always refused; with ``settings``, targets on private networks too when
    ``alerts_allow_private_targets`` is off. (The check that protects is made again on every connection.)
    """
    get(kind)
    return _VALIDATE[kind](config, settings=settings)
