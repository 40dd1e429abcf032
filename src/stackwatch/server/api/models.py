"""Response shapes of the REST API (they are its OpenAPI schema, too)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from stackwatch.server.api.params import MAX_ID

__all__ = [
    "ActivityEntry",
    "ActivityPage",
    "AlertChannel",
    "AlertChannelCreate",
    "AlertRule",
    "AlertRuleCreate",
    "AlertRuleUpdate",
    "ChannelTestResult",
    "Comment",
    "CommentCreate",
    "CommentPage",
    "EventConflict",
    "EventDetail",
    "EventPage",
    "EventSummary",
    "GroupingHash",
    "GroupingTransition",
    "Issue",
    "IssueDetail",
    "IssuePage",
    "IssueUpdate",
    "OutboxNotification",
    "Project",
    "ProjectUpdate",
]


class Project(BaseModel):
    id: int
    slug: str
    name: str
    dsn: str | None
    collect_ips: bool
    scrub_emails: bool
    scrub_ips: bool
    # The project's own retention settings (null: the server's) and the limits in force.
    retention_days: int | None
    max_events: int | None
    effective_retention_days: int
    effective_max_events: int
    # Events stored now, and the bytes of their compressed payloads and attachments.
    stored_events: int
    stored_bytes: int
    grouping_version: int
    grouping_transition: GroupingTransition | None  # while the project moves from another version
    stacktrace_rules: str
    fingerprint_rules: str


class GroupingTransition(BaseModel):
    from_version: int
    until: str


class ProjectUpdate(BaseModel):
    """Privacy settings apply to events digested after the change; retention settings (null: back to the
    server's) from the worker's next pass."""

    model_config = ConfigDict(extra="forbid")

    collect_ips: bool | None = None
    scrub_emails: bool | None = None
    scrub_ips: bool | None = None
    retention_days: int | None = None
    max_events: int | None = None
    # Grouping applies to events digested after the change; a new version starts a transition (docs/grouping.md).
    grouping_version: StrictInt | None = None
    stacktrace_rules: str | None = None
    fingerprint_rules: str | None = None


class Issue(BaseModel):
    id: int
    project_id: int
    title: str
    culprit: str
    type: str
    value: str
    level: str
    status: str
    platform: str
    unhandled: bool
    count: int
    stored_events: int  # of ``count``: those retention has not deleted or thinned out
    user_count: int
    run_count: int
    workflow_count: int
    tenant_count: int
    first_seen: str
    last_seen: str
    first_release: str | None
    last_release: str | None
    regressed_at: str | None
    resolved_at: str | None
    grouping_hash: str
    grouping_version: int
    assignee: str | None  # the email of the user it is assigned to
    # Snoozed: the condition that brings it back ({"until"} | {"events", "at_count"} | {"users", "at_user_count"}
    # | {"per_hour"}); null when it is not snoozed.
    ignore: dict[str, Any] | None


class IssueUpdate(BaseModel):
    """A partial change: the status, the assignee (an email; null: nobody), or both. ``ignore`` goes with
    ``"status": "ignored"``: one condition ({"until": ISO time} | {"events": N} | {"users": N} | {"per_hour": N})
    after which the issue is unresolved again by itself; without it (or null) it stays ignored."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["unresolved", "resolved", "ignored"] | None = None
    assignee: str | None = None
    ignore: dict[str, Any] | None = None


class IssuePage(BaseModel):
    data: list[Issue]
    next_cursor: str | None


class TagValue(BaseModel):
    value: str
    count: int


class TagFacet(BaseModel):
    key: str
    total: int
    values: list[TagValue]


class HourlyCount(BaseModel):
    hour: str
    count: int


class GroupingHash(BaseModel):
    hash: str
    version: int
    first_seen: str


class IssueDetail(Issue):
    tags: list[TagFacet]
    hourly: list[HourlyCount]
    # Every hash that finds the issue: the one that created it, and those it gained (docs/grouping.md).
    hashes: list[GroupingHash]


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str  # Markdown, 1 to 10,000 characters


class Comment(BaseModel):
    id: int
    issue_id: int
    author: str  # the user's email, or the API token's name for a token without a user
    user_id: int | None
    text: str
    created_at: str


class CommentPage(BaseModel):
    data: list[Comment]
    next_cursor: str | None


class ActivityEntry(BaseModel):
    """One entry of an issue's activity log; ``kind`` and ``data`` as docs/api.md lists them."""

    id: int
    kind: str
    actor: str  # an email, an API token's name, or "Stackwatch"
    user_id: int | None
    data: dict[str, Any]
    created_at: str


class ActivityPage(BaseModel):
    data: list[ActivityEntry]
    next_cursor: str | None


class EventSummary(BaseModel):
    event_id: str
    issue_id: int
    timestamp: str
    received_at: str
    level: str
    title: str
    handled: bool
    environment: str | None
    release: str | None
    component: str | None
    workflow_id: str | None
    run_id: str | None
    step_id: str | None
    tenant: str | None
    user: str | None


class EventPage(BaseModel):
    data: list[EventSummary]
    next_cursor: str | None


class EventDetail(EventSummary):
    project_id: int
    data: dict[str, Any]


class EventConflict(BaseModel):
    """``GET /events/{event_id}`` for an id stored in several projects (event ids are unique per project only)."""

    detail: str
    projects: list[str]


# --- alerts ---------------------------------------------------------------------------------------------------
# Values are checked by stackwatch.server.alerts.manage, which answers with a message a user can act on (422);
# the models only fix the field names and JSON types, so a misspelt field is refused instead of ignored — and keep
# ids within what a row can have, since one beyond 64 bits cannot even be compared with a column on SQLite.
ChannelRef = Annotated[int, Field(ge=1, le=MAX_ID)]


class AlertChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    config: dict[str, Any]  # the channel kind's own fields (docs/alerts.md)
    hourly_cap: int | None = None


class AlertChannel(BaseModel):
    """A channel as shown: its configuration without secrets, and its delivery health."""

    id: int
    name: str
    kind: str
    config: dict[str, Any]
    hourly_cap: int
    healthy: bool
    status: Literal["healthy", "unhealthy", "needs_smtp"]
    waiting: str | None = None
    consecutive_failures: int
    last_error: str | None
    last_failure_at: str | None
    last_success_at: str | None


class ChannelTestResult(BaseModel):
    delivered: bool
    error: str | None = None
    permanent: bool | None = None


class AlertRuleUpdate(BaseModel):
    """A partial change: only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    trigger: str | None = None
    level: str | None = None
    threshold: int | None = None
    window_minutes: int | None = None
    impact_kind: str | None = None
    filters: dict[str, Any] | None = None
    cooldown_minutes: int | None = None
    enabled: bool | None = None
    channels: list[ChannelRef] | None = None


class AlertRuleCreate(AlertRuleUpdate):
    name: str
    trigger: str
    channels: list[ChannelRef]


class AlertRule(BaseModel):
    id: int
    name: str
    trigger: str
    level: str | None
    threshold: int | None
    window_minutes: int | None
    impact_kind: str | None
    filters: dict[str, Any]
    cooldown_minutes: int
    enabled: bool
    channels: list[int]


class OutboxNotification(BaseModel):
    id: int
    idempotency_key: str
    rule_id: int | None
    channel_id: int
    issue_id: int | None
    status: str
    attempts: int
    last_error: str | None
    created_at: str
    sent_at: str | None
    reason: str | None
    title: str | None
