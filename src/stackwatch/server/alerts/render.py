"""What every channel says about a notification, in plain words, so e-mail, Slack, webhooks and Apprise agree.

The helpers here return plain text. Escaping for a format (HTML, Slack mrkdwn, e-mail headers) is the channel's
job, done on these strings as the last step before output.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from stackwatch.server.alerts.message import Notification

__all__ = [
    "MAX_TITLE",
    "count",
    "facts",
    "held_back_line",
    "one_line",
    "subject",
    "text_body",
    "timestamp",
    "truncate",
    "workflow",
]

# Long enough for any real exception title, short enough for a subject line and a Slack header.
MAX_TITLE = 120

_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """Collapse every run of white space (newlines included) into one space: headers and subjects are one line."""
    return _WHITESPACE.sub(" ", text).strip()


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, with an ellipsis when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def timestamp(seconds: float) -> str:
    """A Unix time as ``2024-05-01 12:34:56 UTC``; ``unknown`` for 0 (never seen)."""
    if seconds <= 0:
        return "unknown"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def count(value: int) -> str:
    """A count with thousands separators: ``12,345``."""
    return f"{value:,}"


def held_back_line(notification: Notification) -> str | None:
    """``and 37 more events`` when events were held back by throttling since the previous notification."""
    held = notification.held_back
    if held <= 0:
        return None
    return f"and {count(held)} more event{'s' if held != 1 else ''}"


def workflow(notification: Notification) -> str | None:
    """``workflow / run / step`` as far as known (MeshHook context), or ``None``."""
    parts = [notification.workflow_id, notification.run_id, notification.step_id]
    if not any(parts):
        return None
    return " / ".join(part or "?" for part in parts[: _last_set(parts) + 1])


def _last_set(parts: list[str | None]) -> int:
    return max(index for index, part in enumerate(parts) if part)


def subject(notification: Notification) -> str:
    """``[Stackwatch] [production] ERROR: <title>``, one line, the title truncated to ``MAX_TITLE``."""
    environment = f" [{one_line(notification.environment)}]" if notification.environment else ""
    title = truncate(one_line(notification.title) or "(no title)", MAX_TITLE)
    return f"[Stackwatch]{environment} {one_line(notification.level).upper()}: {title}"


def facts(notification: Notification) -> list[tuple[str, str]]:
    """The labelled details of a notification, in display order; optional ones only when set."""
    n = notification
    optional = [
        ("Environment", n.environment),
        ("Release", n.release),
        ("Component", n.component),
        ("Workflow / run / step", workflow(n)),
    ]
    rows = [("Project", n.project), ("Level", n.level), ("Status", n.status)]
    rows += [(label, value) for label, value in optional if value]
    rows += [
        ("Events", count(n.event_count)),
        ("Users", count(n.user_count)),
        ("Runs", count(n.run_count)),
        ("Workflows", count(n.workflow_count)),
        ("First seen", timestamp(n.first_seen)),
        ("Last seen", timestamp(n.last_seen)),
    ]
    return rows


def text_body(notification: Notification) -> str:
    """The plain-text rendering: reason, title, culprit, the facts, the held-back line and the link."""
    n = notification
    lines = [f"{n.reason}: {n.title}"]
    if n.culprit:
        lines.append(f"in {n.culprit}")
    lines.append("")
    width = max(len(label) for label, _ in facts(n))
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in facts(n)]
    more = held_back_line(n)
    if more:
        lines += ["", f"{more} since the previous notification."]
    if n.url:
        lines += ["", n.url]
    return "\n".join(lines) + "\n"
