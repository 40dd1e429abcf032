"""Response shapes of the REST API (they are its OpenAPI schema, too)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "EventDetail",
    "EventPage",
    "EventSummary",
    "Issue",
    "IssueDetail",
    "IssuePage",
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


class ProjectUpdate(BaseModel):
    """Privacy settings; each applies to events digested after the change."""

    model_config = ConfigDict(extra="forbid")

    collect_ips: bool | None = None
    scrub_emails: bool | None = None
    scrub_ips: bool | None = None


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


class IssueDetail(Issue):
    tags: list[TagFacet]
    hourly: list[HourlyCount]


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
