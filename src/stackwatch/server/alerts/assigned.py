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

from sqlalchemy import Connection, select

from stackwatch.server.alerts.channels.base import ChannelError
from stackwatch.server.alerts.channels.email import EmailChannel
from stackwatch.server.alerts.message import Notification
from stackwatch.server.config import Settings
from stackwatch.server.storage.schema import issues, projects

__all__ = ["assignment_mail"]

log = logging.getLogger(__name__)


def assignment_mail(
    connection: Connection, settings: Settings, issue_id: int, *, to: str, by: str
) -> Callable[[], None] | None:
    """What sends the e-mail to ``to`` about the issue as it stands in the caller's transaction (run it after the
    commit, e.g. as a background task); ``None`` when SMTP is not configured."""
    if not settings.smtp_host:
        return None
    issue = connection.execute(
        select(issues, projects.c.slug)
        .join(projects, projects.c.id == issues.c.project_id)
        .where(issues.c.id == issue_id)
    ).one()
    notification = Notification.of_issue(
        issue,
        key=f"assigned-{issue_id}-{uuid.uuid4().hex}",
        project=str(issue.slug),
        reason=f"Assigned to you by {by}",
        base_url=settings.base_url,
    )
    channel = EmailChannel([to], settings)

    def send() -> None:
        try:
            channel.send(notification)
        except ChannelError as error:
            log.warning("the e-mail telling %s of issue %s could not be sent: %s", to, issue_id, error)

    return send
