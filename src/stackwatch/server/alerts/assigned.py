"""The e-mail to a user someone else assigned an issue to, over the server's SMTP settings.

It is the e-mail channel's message (``channels/email.py``: the same subject, text and HTML, escaped the same way),
with "Assigned to you by …" as its reason, sent once, after the change is committed, to the assignee alone. It
is a courtesy, not an alert: no outbox, no retries, no channel health. When SMTP is not configured
(``STACKWATCH_SMTP_HOST`` unset) nothing is sent and nothing is logged; a failed delivery is logged as a warning.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from stackwatch.server.alerts.channels.base import ChannelError
from stackwatch.server.alerts.channels.email import EmailChannel
from stackwatch.server.alerts.message import Notification
from stackwatch.server.config import Settings

__all__ = ["assignment_mail"]

log = logging.getLogger(__name__)


def _epoch(stamp: str | None) -> float:
    return datetime.fromisoformat(stamp).timestamp() if stamp else 0.0


def _notification(issue: dict[str, Any], project: str, by: str, url: str) -> Notification:
    return Notification(
        idempotency_key=f"assigned-{issue['id']}-{uuid.uuid4().hex}",
        project=project,
        issue_id=int(issue["id"]),
        title=str(issue["title"]),
        culprit=str(issue["culprit"]),
        level=str(issue["level"]),
        status=str(issue["status"]),
        reason=f"Assigned to you by {by}",
        event_count=int(issue["count"]),
        user_count=int(issue["user_count"]),
        run_count=int(issue["run_count"]),
        workflow_count=int(issue["workflow_count"]),
        first_seen=_epoch(issue["first_seen"]),
        last_seen=_epoch(issue["last_seen"]),
        url=url,
    )


def assignment_mail(
    settings: Settings, issue: dict[str, Any], *, project: str, to: str, by: str
) -> Callable[[], None] | None:
    """What sends the e-mail to ``to`` (run it after the commit, e.g. as a background task); ``None`` when SMTP
    is not configured. ``issue``: as the REST API shows it."""
    if not settings.smtp_host:
        return None
    url = f"{settings.base_url.rstrip('/')}/issues/{issue['id']}"
    notification = _notification(issue, project, by, url)
    channel = EmailChannel([to], settings)

    def send() -> None:
        try:
            channel.send(notification)
        except ChannelError as error:
            log.warning("the e-mail telling %s of issue %s could not be sent: %s", to, issue["id"], error)

    return send
