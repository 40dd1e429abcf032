"""What a notification says: one value, rendered by each channel in its own format.

Every string here comes from a scrubbed event (the digest redacts before anything is stored) or from Stackwatch
itself; channels must still escape it for their format (HTML, Slack mrkdwn).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Notification"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    # Stable across retries of the same notification: receivers can deduplicate on it.
    idempotency_key: str
    project: str  # the project's slug
    issue_id: int
    title: str
    culprit: str
    level: str  # fatal, error, warning, info, debug
    status: str  # unresolved, resolved, ignored
    # Why it was sent, for people: "New issue", "Regression", "Fatal event", "more than 50 events in 5 minutes".
    reason: str
    environment: str | None = None
    release: str | None = None
    component: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    step_id: str | None = None
    event_count: int = 0  # the issue's total
    user_count: int = 0
    run_count: int = 0
    workflow_count: int = 0
    # Events of this issue that matched the rule while it was throttled since the previous notification.
    held_back: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    url: str = ""  # link to the issue in Stackwatch

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of_issue(cls, issue: Any, *, key: str, project: str, reason: str, base_url: str, **fields: Any) -> Notification:
        """A notification about ``issue`` (a row of ``schema.issues``), with ``fields`` for the rest."""
        return cls(
            idempotency_key=key,
            project=project,
            issue_id=int(issue.id),
            title=issue.title,
            culprit=issue.culprit,
            level=issue.level,
            status=issue.status,
            reason=reason,
            event_count=int(issue.event_count),
            user_count=int(issue.user_count),
            run_count=int(issue.run_count),
            workflow_count=int(issue.workflow_count),
            first_seen=float(issue.first_seen),
            last_seen=float(issue.last_seen),
            url=f"{base_url.rstrip('/')}/issues/{issue.id}",
            **fields,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
