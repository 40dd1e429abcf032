"""The alert part of the REST API: a project's channels, rules and outbox, and a channel's test message.

Everything that is stored goes through ``alerts.manage``, the one place that validates rules and channels; its
``AlertError`` becomes a 422 with its message. A channel's stored configuration can hold secrets, so channels are
only ever shown through ``manage.public_channel``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, Engine, select

from stackwatch.server.alerts import manage
from stackwatch.server.alerts.dispatcher import channel_config, record_health, send_now
from stackwatch.server.alerts.message import Notification
from stackwatch.server.api.models import (
    AlertChannel,
    AlertChannelCreate,
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    ChannelTestResult,
    OutboxNotification,
)
from stackwatch.server.api.params import ChannelId, RuleId
from stackwatch.server.api.queries import iso
from stackwatch.server.config import Settings
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import alert_channels, alert_outbox, projects

__all__ = ["add_alert_routes", "channel_test_notification"]

OutboxStatus = Literal["pending", "sent", "failed"]


def _project_id(connection: Connection, slug: str) -> int:
    project_id = connection.execute(select(projects.c.id).where(projects.c.slug == slug)).scalar()
    if project_id is None:
        raise HTTPException(404, f"no project {slug!r}")
    return int(project_id)


def _channel_row(connection: Connection, project_id: int, channel_id: int) -> Any:
    row = connection.execute(
        select(alert_channels).where(alert_channels.c.id == channel_id, alert_channels.c.project_id == project_id)
    ).first()
    if row is None:
        raise HTTPException(404, f"no alert channel {channel_id} in this project")
    return row


def _shown(channel: dict[str, Any]) -> dict[str, Any]:
    """``public_channel`` with its times as ISO 8601, like every time in the API."""
    return {
        **channel,
        "last_failure_at": iso(channel["last_failure_at"]),
        "last_success_at": iso(channel["last_success_at"]),
    }


def _rule(connection: Connection, project_id: int, rule_id: int) -> dict[str, Any]:
    found = manage.get_rule(connection, project_id, rule_id)
    if found is None:
        raise HTTPException(404, f"no alert rule {rule_id} in this project")
    return found


def _outbox_item(row: Any) -> dict[str, Any]:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    return {
        "id": row.id,
        "idempotency_key": row.idempotency_key,
        "rule_id": row.rule_id,
        "channel_id": row.channel_id,
        "issue_id": row.issue_id,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "reason": payload.get("reason"),
        "title": payload.get("title"),
    }


def channel_test_notification(slug: str, project_url: str) -> Notification:
    """What ``channel test`` sends (API and CLI). Its idempotency key is new each time: a receiver that drops
    repeated keys must still show a second test."""
    moment = now()
    return Notification(
        idempotency_key=f"test-{uuid.uuid4().hex}",
        project=slug,
        issue_id=0,
        title="Test notification from Stackwatch",
        culprit="",
        level="info",
        status="unresolved",
        reason="Test notification",
        first_seen=moment,
        last_seen=moment,
        url=project_url,
    )


def add_alert_routes(
    router: APIRouter, engine: Engine, settings: Settings, public_base: Callable[[Request], str]
) -> None:
    """Add the alert endpoints to ``router`` (``public_base(request)``: the server's public URL)."""

    @contextmanager
    def writing() -> Iterator[Connection]:
        """A write transaction; an ``AlertError`` rolls it back and answers 422 with its message."""
        with engine.connect() as connection:
            connection = connection.execution_options(sqlite_write=True)
            try:
                with connection.begin():
                    yield connection
            except manage.AlertError as error:
                raise HTTPException(422, str(error)) from None

    @router.get("/projects/{slug}/alert-channels", response_model=list[AlertChannel])
    def list_channels(slug: str) -> list[dict[str, Any]]:
        with engine.connect() as connection:
            return [_shown(c) for c in manage.list_channels(connection, _project_id(connection, slug), settings)]

    @router.post("/projects/{slug}/alert-channels", response_model=AlertChannel, status_code=201)
    def create_channel(slug: str, body: AlertChannelCreate) -> dict[str, Any]:
        options = {} if body.hourly_cap is None else {"hourly_cap": body.hourly_cap}
        with writing() as connection:
            project_id = _project_id(connection, slug)
            channel_id = manage.create_channel(
                connection, project_id, name=body.name, kind=body.kind, config=body.config, settings=settings, **options
            )
            return _shown(manage.public_channel(_channel_row(connection, project_id, channel_id), settings))

    @router.delete("/projects/{slug}/alert-channels/{channel_id}", status_code=204)
    def delete_channel(slug: str, channel_id: ChannelId) -> Response:
        with writing() as connection:
            if not manage.delete_channel(connection, _project_id(connection, slug), channel_id):
                raise HTTPException(404, f"no alert channel {channel_id} in this project")
        return Response(status_code=204)

    @router.post(
        "/projects/{slug}/alert-channels/{channel_id}/test",
        response_model=ChannelTestResult,
        response_model_exclude_none=True,
        responses={502: {"model": ChannelTestResult, "description": "The channel did not deliver"}},
    )
    def test_channel(slug: str, channel_id: ChannelId, request: Request) -> Any:
        with engine.connect() as connection:
            row = _channel_row(connection, _project_id(connection, slug), channel_id)
            config = channel_config(connection, row.config)
        notification = channel_test_notification(slug, f"{public_base(request)}/projects/{slug}")
        outcome = send_now(row.kind, config, notification, settings)  # outside any transaction: it waits on the network
        with engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            record_health(connection, row.id, outcome, now())
        if outcome.delivered:
            return {"delivered": True}
        failed = {"delivered": False, "error": outcome.error, "permanent": outcome.permanent}
        return JSONResponse(failed, status_code=502)

    @router.get("/projects/{slug}/alert-rules", response_model=list[AlertRule])
    def list_rules(slug: str) -> list[dict[str, Any]]:
        with engine.connect() as connection:
            return manage.list_rules(connection, _project_id(connection, slug))

    @router.post("/projects/{slug}/alert-rules", response_model=AlertRule, status_code=201)
    def create_rule(slug: str, body: AlertRuleCreate) -> dict[str, Any]:
        with writing() as connection:
            project_id = _project_id(connection, slug)
            rule_id = manage.create_rule(connection, project_id, body.model_dump(exclude_none=True))
            return _rule(connection, project_id, rule_id)

    @router.patch("/projects/{slug}/alert-rules/{rule_id}", response_model=AlertRule)
    def update_rule(slug: str, rule_id: RuleId, body: AlertRuleUpdate) -> dict[str, Any]:
        with writing() as connection:
            project_id = _project_id(connection, slug)
            if not manage.update_rule(connection, project_id, rule_id, body.model_dump(exclude_unset=True)):
                raise HTTPException(404, f"no alert rule {rule_id} in this project")
            return _rule(connection, project_id, rule_id)

    @router.delete("/projects/{slug}/alert-rules/{rule_id}", status_code=204)
    def delete_rule(slug: str, rule_id: RuleId) -> Response:
        with writing() as connection:
            if not manage.delete_rule(connection, _project_id(connection, slug), rule_id):
                raise HTTPException(404, f"no alert rule {rule_id} in this project")
        return Response(status_code=204)

    @router.get("/projects/{slug}/alert-outbox", response_model=list[OutboxNotification])
    def list_outbox(
        slug: str, status: OutboxStatus | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[dict[str, Any]]:
        query = (
            select(alert_outbox)
            .join(alert_channels, alert_channels.c.id == alert_outbox.c.channel_id)
            .order_by(alert_outbox.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(alert_outbox.c.status == status)
        with engine.connect() as connection:
            query = query.where(alert_channels.c.project_id == _project_id(connection, slug))
            return [_outbox_item(row) for row in connection.execute(query)]
