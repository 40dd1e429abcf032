"""Apprise channel: the long tail of services (Discord, Teams, Telegram, ntfy, PagerDuty, …) through one URL.

Named ``apprise_url`` so that ``import apprise`` always means the library. The message is the plain-text
rendering with the e-mail subject as its title. Apprise reports failure as ``False`` without saying whether a
retry could help, so every failure is transient; a URL Apprise cannot parse is refused when it is stored.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from stackwatch.server.alerts.channels.base import ChannelError
from stackwatch.server.alerts.channels.webhook import check_target
from stackwatch.server.alerts.message import Notification
from stackwatch.server.alerts.render import subject, text_body
from stackwatch.server.config import Settings

if TYPE_CHECKING:
    import apprise

__all__ = ["KIND", "SELF_HOSTED_SCHEMES", "AppriseChannel", "build", "public", "validate"]

KIND = "apprise"
MAX_URL = 2048
# Services whose URL names the server to contact (the generic JSON/XML/form posts and self-hosted services).
# Only these are checked against private addresses; in the others the "host" part is an id or a token.
SELF_HOSTED_SCHEMES = frozenset(
    f"{name}{suffix}"
    for name in ("json", "xml", "form", "gotify", "mmost", "rocket", "ntfy", "apprise")
    for suffix in ("", "s")
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


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


def _check_private(url: str, service: Any, settings: Settings | None, *, at_send: bool) -> None:
    host = getattr(service, "host", None)
    if _scheme(url) not in SELF_HOSTED_SCHEMES or not isinstance(host, str) or not host:
        return
    port = getattr(service, "port", None) or (443 if getattr(service, "secure", False) else 80)
    check_target(host, int(port), settings, at_send=at_send)


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
    service = _service(url)
    if service is None:
        raise ValueError(f"url: Apprise cannot use this {_scheme(url)}:// URL (unknown service or missing parts)")
    _check_private(url, service, settings, at_send=False)
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
        service = _service(self.url)
        if service is None:
            raise ChannelError(f"Apprise can no longer use this {scheme}:// URL", permanent=True)
        _check_private(self.url, service, self.settings, at_send=True)
        if hasattr(service, "redirects"):
            service.redirects = False  # a "?redirect=yes" in the URL must not reopen what the asset closed
        import apprise

        notifier = apprise.Apprise(asset=_asset())
        notifier.add(service)
        delivered = notifier.notify(
            body=text_body(notification), title=subject(notification), body_format=apprise.NotifyFormat.TEXT
        )
        if not delivered:
            reason = "Apprise gives no reason; see the server log"
            raise ChannelError(f"{scheme}:// delivery failed ({reason})", permanent=False)


def build(config: dict[str, Any], settings: Settings | None) -> AppriseChannel:
    return AppriseChannel(config["url"], settings)
