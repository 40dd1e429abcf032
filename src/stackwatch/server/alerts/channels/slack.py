"""Slack channel: a Block Kit message POSTed to an incoming webhook (Mattermost and others accept the same).

Event data in ``mrkdwn`` text is escaped (``&``, ``<``, ``>``), so a title cannot mention ``<!channel>`` or forge
a link; ``plain_text`` objects (the header, the button) are shown as given by Slack and need no escaping.
Delivery follows the HTTP rules in :mod:`stackwatch.server.alerts.channels.webhook`.
"""

from __future__ import annotations

import json
from typing import Any

from stackwatch.server.alerts.channels.webhook import USER_AGENT, check_url, post, public_url, validate_url
from stackwatch.server.alerts.message import Notification
from stackwatch.server.alerts.render import count, held_back_line, one_line, subject, truncate, workflow
from stackwatch.server.config import Settings

__all__ = ["KIND", "SlackChannel", "blocks", "build", "escape", "public", "validate"]

KIND = "slack"
MAX_HEADER = 150  # Slack's limit for a header block's text
MAX_CULPRIT = 500


def escape(text: str) -> str:
    """Slack ``mrkdwn`` escaping: the three characters Slack gives a meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{escape(truncate(value, 200))}"}


def _fields(n: Notification) -> list[dict[str, str]]:
    values = [
        ("Level", n.level),
        ("Environment", n.environment),
        ("Component", n.component),
        ("Workflow / run", workflow(n)),
        ("Events", count(n.event_count)),
        ("Users", count(n.user_count)),
        ("Runs", count(n.run_count)),
    ]
    return [_field(label, value) for label, value in values if value]


def blocks(n: Notification) -> dict[str, Any]:
    """The message body: ``text`` (the notification fallback) and the Block Kit ``blocks``."""
    culprit = escape(truncate(one_line(n.culprit), MAX_CULPRIT)) if n.culprit else "_no culprit_"
    context = [escape(n.reason), escape(n.project)]
    more = held_back_line(n)
    if more:
        context.append(more)
    header = truncate(one_line(n.title) or "(no title)", MAX_HEADER)
    body: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": culprit}},
        {"type": "section", "fields": _fields(n)},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]
    if n.url.startswith(("http://", "https://")):
        button = {"type": "button", "text": {"type": "plain_text", "text": "View issue"}, "url": n.url}
        body.append({"type": "actions", "elements": [button]})
    return {"text": escape(subject(n)), "blocks": body}


def validate(config: dict[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """``{"url": "https://hooks.slack.com/services/..."}``."""
    if not isinstance(config, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(config) - {"url"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    url = validate_url(config.get("url"))
    check_url(url, settings)
    return {"url": url}


def public(config: dict[str, Any]) -> dict[str, Any]:
    return {"url": public_url(config["url"])}


class SlackChannel:
    kind = KIND

    def __init__(self, url: str, settings: Settings | None):
        self.url = url
        self.settings = settings

    def send(self, notification: Notification) -> None:
        body = json.dumps(blocks(notification), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        post(self.url, content=body, headers=headers, settings=self.settings)


def build(config: dict[str, Any], settings: Settings | None) -> SlackChannel:
    return SlackChannel(config["url"], settings)
