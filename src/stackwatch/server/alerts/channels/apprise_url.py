"""Apprise channel: the long tail of services (Discord, Teams, Telegram, ntfy, PagerDuty, …) through one URL.

Named ``apprise_url`` so that ``import apprise`` always means the library. The message is the plain-text
rendering with the e-mail subject as its title. Apprise reports failure as ``False`` without saying whether a
retry could help, so every failure is transient; a URL Apprise cannot parse is refused when it is stored.

Where a plugin delivers is not always in its URL (``discord://id/token`` goes to discord.com, ``mailto://``
to the SMTP server of a parameter or of a known provider), so it is learnt by running the plugin once, when the
channel is saved, under :func:`guard.probing`: every host it looks up is recorded and the lookup stopped, so
nothing leaves. Those hosts are checked like a webhook URL; a plugin that looks up nothing cannot be checked and is
refused when private targets are not allowed. Every delivery then runs under :func:`guard.connections`, which
checks each connection on the address it is made to.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

from stackwatch.server.alerts import guard
from stackwatch.server.alerts.channels.base import ChannelError
from stackwatch.server.alerts.message import Notification
from stackwatch.server.alerts.render import subject, text_body
from stackwatch.server.alerts.targets import TargetRefused, allows_private, check_target
from stackwatch.server.config import Settings

if TYPE_CHECKING:
    import apprise

__all__ = ["KIND", "OWN_THREAD_SCHEMES", "AppriseChannel", "build", "public", "targets", "validate"]

KIND = "apprise"
MAX_URL = 2048
# Plugins that connect from a thread of their own (XMPP runs an event loop in one), where the guard's context
# does not follow: their connections cannot be checked, so they are refused. tests/test_alert_targets.py fails
# when an Apprise version starts threads anywhere else.
OWN_THREAD_SCHEMES = frozenset({"xmpp", "xmpps"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_PROBE_TEXT = "Stackwatch checks where this channel delivers (this message is never sent)"


class _QuietWhileProbing(logging.Filter):
    """A probe fails every lookup on purpose; the plugin's warnings about it are noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not guard.is_probing()


logging.getLogger("apprise").addFilter(_QuietWhileProbing())  # Apprise logs through this one logger


def _asset() -> apprise.AppriseAsset:
    # Imported when first used: the library loads its 100+ plugins, which the server should not pay for at start
    # unless an Apprise channel exists.
    import apprise

    # Like the HTTP channels, never follow redirects (the setting exists in recent Apprise versions only).
    if hasattr(apprise.AppriseAsset, "http_redirects"):
        return apprise.AppriseAsset(http_redirects=False)
    return apprise.AppriseAsset()


def _service(url: str) -> Any:
    """The Apprise plugin for ``url``, or ``None`` when Apprise cannot use it."""
    import apprise

    return apprise.Apprise.instantiate(url, asset=_asset())


def _scheme(url: str) -> str:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def targets(url: str) -> guard.Probe:
    """Where the plugin for ``url`` would deliver: the hosts it looks up when run once under a probe."""
    service = _service(url)
    if service is None:
        return guard.Probe()
    service.request_rate_per_sec = 0  # no pause between a plugin's several (stopped) requests
    # A plugin may raise on the stopped lookup (or on anything else): what it tried is recorded either way.
    with guard.probing() as probe, contextlib.suppress(Exception):
        service.notify(body=_PROBE_TEXT, title=_PROBE_TEXT)
    return probe


def _check_targets(url: str, settings: Settings | None) -> None:
    scheme = _scheme(url)
    allow_private = allows_private(settings)
    probe = targets(url)
    if not probe.targets and not allow_private:
        raise ValueError(
            f"url: Stackwatch cannot tell which server this {scheme}:// URL delivers to, so it cannot check it "
            "(STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS is off)"
        )
    for host, port in probe.targets:
        try:
            check_target(host, port, allow_private=allow_private)
        except TargetRefused as refused:
            raise ValueError(f"url: {refused}") from None


def validate(config: dict[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """``{"url": "discord://webhook_id/webhook_token"}``: any URL Apprise can use."""
    if not isinstance(config, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(config) - {"url"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    url = config.get("url")
    if not isinstance(url, str) or not _scheme(url.strip()):
        raise ValueError("url: required, an Apprise URL such as discord://webhook_id/webhook_token")
    url = url.strip()
    if len(url) > MAX_URL:
        raise ValueError(f"url: longer than {MAX_URL} characters")
    if _scheme(url) in OWN_THREAD_SCHEMES:
        raise ValueError(f"url: {_scheme(url)}:// connects from a thread of its own, where Stackwatch cannot check it")
    service = _service(url)
    if service is None:
        raise ValueError(f"url: Apprise cannot use this {_scheme(url)}:// URL (unknown service or missing parts)")
    _check_targets(url, settings)
    return {"url": url}


def public(config: dict[str, Any]) -> dict[str, Any]:
    """Only the scheme: the rest of an Apprise URL is usually credentials."""
    return {"url": f"{_scheme(config['url'])}://…"}


class AppriseChannel:
    kind = KIND

    def __init__(self, url: str, settings: Settings | None):
        self.url = url
        self.settings = settings

    def send(self, notification: Notification) -> None:
        scheme = _scheme(self.url)
        if scheme in OWN_THREAD_SCHEMES:
            raise ChannelError(f"{scheme}:// connects from a thread of its own and cannot be checked", permanent=True)
        service = _service(self.url)
        if service is None:
            raise ChannelError(f"Apprise can no longer use this {scheme}:// URL", permanent=True)
        if hasattr(service, "redirects"):
            service.redirects = False  # a "?redirect=yes" in the URL must not reopen what the asset closed
        import apprise

        notifier = apprise.Apprise(asset=_asset())
        notifier.add(service)
        with guard.connections(allow_private=allows_private(self.settings)) as checked:
            delivered = notifier.notify(
                body=text_body(notification), title=subject(notification), body_format=apprise.NotifyFormat.TEXT
            )
        if checked.refused is not None:
            raise ChannelError(f"{scheme}:// not sent: {checked.refused}", permanent=True)
        if not delivered:
            reason = "Apprise gives no reason; see the server log"
            raise ChannelError(f"{scheme}:// delivery failed ({reason})", permanent=False)


def build(config: dict[str, Any], settings: Settings | None) -> AppriseChannel:
    return AppriseChannel(config["url"], settings)
