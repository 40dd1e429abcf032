"""Alert rules in the digest: every trigger and filter fires when it should and not when it should not; throttling
holds back and reports; notifications are written to the outbox with the batch that caused them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from stackwatch.server.alerts import manage
from stackwatch.server.storage.schema import (
    alert_channels,
    alert_outbox,
    alert_rules,
    alert_throttle,
    events,
    issue_impact,
    issue_minutes,
    issues,
)
from tests import support
from tests.alert_support import only_webhook_channel
from tests.conftest import Stack


@pytest.fixture
def channel(stack: Stack) -> int:
    """A clean slate: the project's default rules removed, one webhook channel (never contacted here)."""
    with stack.services.engine.begin() as connection:
        return only_webhook_channel(connection)


def rule(stack: Stack, channel: int, **spec: Any) -> int:
    spec = {"name": "rule", "cooldown_minutes": 30, "channels": [channel], **spec}
    with stack.services.engine.begin() as connection:
        return manage.create_rule(connection, 1, spec)


def send(stack: Stack, *events: dict[str, Any]) -> None:
    for event in events:
        support.send_ok(stack, event)
    stack.digest()


def outbox(stack: Stack) -> list[dict[str, Any]]:
    with stack.services.engine.connect() as connection:
        rows = connection.execute(select(alert_outbox).order_by(alert_outbox.c.id)).all()
    return [{**json.loads(row.payload), "channel_id": row.channel_id, "rule_id": row.rule_id} for row in rows]


def event(value: str = "bad value", **fields: Any) -> dict[str, Any]:
    return support.exception_event(value=value, **fields)


def test_a_new_project_starts_with_the_default_alerts(stack: Stack) -> None:
    with stack.services.engine.connect() as connection:
        rules = manage.list_rules(connection, 1)
        channels = manage.list_channels(connection, 1)
    assert [(r["name"], r["trigger"], r["level"], r["filters"]) for r in rules] == [
        ("New issue", "new_issue", None, {}),
        ("Regression", "regression", None, {}),
        ("Fatal in production", "level", "fatal", {"environment": "production"}),
    ]
    assert [(c["name"], c["kind"], c["config"].get("admins")) for c in channels] == [("Administrators", "email", True)]
    assert all(r["channels"] == [channels[0]["id"]] for r in rules)


# --- triggers -------------------------------------------------------------------------------------------------


def test_new_issue_fires_once(stack: Stack, channel: int) -> None:
    rule(stack, channel, trigger="new_issue")
    send(stack, event(), event())
    send(stack, event())  # same issue, later batch
    sent = outbox(stack)
    assert len(sent) == 1
    assert sent[0]["reason"] == "New issue" and sent[0]["title"].startswith("ValueError")
    assert sent[0]["event_count"] == 2 and sent[0]["url"].endswith(f"/issues/{sent[0]['issue_id']}")


def test_regression_fires_when_a_resolved_issue_comes_back(stack: Stack, channel: int) -> None:
    rule(stack, channel, trigger="regression")
    send(stack, event())
    assert outbox(stack) == []  # new, not a regression
    with stack.services.engine.begin() as connection:
        connection.execute(update(issues).values(status="resolved"))
    send(stack, event())
    assert [n["reason"] for n in outbox(stack)] == ["Regression"]
    send(stack, event())  # unresolved again: no further regression
    assert len(outbox(stack)) == 1


def test_level_fires_at_or_above(stack: Stack, channel: int) -> None:
    rule(stack, channel, trigger="level", level="critical", cooldown_minutes=0)  # critical = fatal
    send(stack, event(level="error"), event(level="warning"))
    assert outbox(stack) == []
    send(stack, event(level="fatal"))
    assert [n["reason"] for n in outbox(stack)] == ["Fatal event"]


def test_event_frequency_fires_above_the_threshold(stack: Stack, channel: int) -> None:
    rule(stack, channel, trigger="event_frequency", threshold=3, window_minutes=5)
    send(stack, event(), event(), event())
    assert outbox(stack) == []
    send(stack, event())
    assert [n["reason"] for n in outbox(stack)] == ["4 events in the last 5 minutes"]


def test_event_frequency_counts_only_the_window(stack: Stack, channel: int) -> None:
    rule(stack, channel, trigger="event_frequency", threshold=3, window_minutes=5)
    send(stack, event(), event(), event())
    with stack.services.engine.begin() as connection:  # those three arrived ten minutes ago
        connection.execute(update(issue_minutes).values(minute=issue_minutes.c.minute - 10))
    send(stack, event())
    assert outbox(stack) == []


def test_event_frequency_counts_events_retention_removed(stack: Stack, channel: int) -> None:
    """Windows are counted from the digest's per-minute counts, not from the event rows retention may delete."""
    rule(stack, channel, trigger="event_frequency", threshold=3, window_minutes=5)
    send(stack, event(), event(), event())
    with stack.services.engine.begin() as connection:
        connection.execute(delete(events))
    send(stack, event())
    assert [n["reason"] for n in outbox(stack)] == ["4 events in the last 5 minutes"]


def test_impact_counts_only_values_seen_in_the_window(stack: Stack, channel: int) -> None:
    rule(stack, channel, trigger="impact", impact_kind="users", threshold=1, window_minutes=10)
    send(stack, event(user={"id": "u1"}))
    with stack.services.engine.begin() as connection:  # u1 was last seen an hour ago
        connection.execute(update(issue_impact).values(last_seen=issue_impact.c.last_seen - 3600))
        connection.execute(delete(events))
    send(stack, event(user={"id": "u2"}))
    assert outbox(stack) == []
    send(stack, event(user={"id": "u1"}))  # seen again: both in the window now
    assert [n["reason"] for n in outbox(stack)] == ["2 users affected in the last 10 minutes"]


@pytest.mark.parametrize(
    ("kind", "same", "different"),
    [
        ("users", {"user": {"id": "u1"}}, {"user": {"id": "u2"}}),
        ("runs", {"tags": {"run_id": "r1"}}, {"tags": {"run_id": "r2"}}),
        ("workflows", {"tags": {"workflow_id": "w1"}}, {"tags": {"workflow_id": "w2"}}),
    ],
)
def test_impact_fires_above_distinct_count(
    stack: Stack, channel: int, kind: str, same: dict[str, Any], different: dict[str, Any]
) -> None:
    rule(stack, channel, trigger="impact", impact_kind=kind, threshold=1, window_minutes=10)
    send(stack, event(**same), event(**same))
    assert outbox(stack) == []
    send(stack, event(**different))
    assert [n["reason"] for n in outbox(stack)] == [f"2 {kind} affected in the last 10 minutes"]


# --- filters --------------------------------------------------------------------------------------------------

FILTER_CASES = [
    ({"environment": "production"}, {"environment": "production"}, {"environment": "staging"}),
    ({"release": "app@2"}, {"release": "app@2"}, {"release": "app@1"}),
    ({"component": "orchestrator"}, {"tags": {"component": "orchestrator"}}, {"tags": {"component": "api"}}),
    ({"workflow_id": "wf_a"}, {"contexts": {"workflow": {"workflow_id": "wf_a"}}}, {"tags": {"workflow_id": "wf_b"}}),
    ({"level": "error"}, {"level": "fatal"}, {"level": "warning"}),
    ({"tags": {"tenant": "acme"}}, {"tags": {"tenant": "acme"}}, {"tags": {"tenant": "globex"}}),
]


@pytest.mark.parametrize(("filters", "passing", "failing"), FILTER_CASES)
def test_filters(
    stack: Stack, channel: int, filters: dict[str, Any], passing: dict[str, Any], failing: dict[str, Any]
) -> None:
    rule(stack, channel, trigger="new_issue", filters=filters)
    send(stack, support.exception_event(kind="TypeError", **failing))
    assert outbox(stack) == [], "a non-matching event fired"
    send(stack, event(**passing), support.exception_event(kind="KeyError", **passing))
    assert len(outbox(stack)) == 2, "a matching event did not fire"


# --- throttling -----------------------------------------------------------------------------------------------


def test_a_thousand_events_make_one_notification_per_cooldown(stack: Stack, channel: int) -> None:
    rule_id = rule(stack, channel, trigger="level", level="fatal", cooldown_minutes=30)
    for _batch in range(4):
        for _ in range(250):
            support.send_ok(stack, event(level="fatal"))
        stack.digest()
    first = outbox(stack)
    assert len(first) == 1 and first[0]["held_back"] == 0
    # Thirty-one minutes later (the throttle's clock moved back), the next event is notified, with the count.
    with stack.services.engine.begin() as connection:
        connection.execute(update(alert_throttle).values(last_sent_at=alert_throttle.c.last_sent_at - 31 * 60))
    send(stack, event(level="fatal"))
    second = outbox(stack)[1]
    assert second["held_back"] == 999 and second["rule_id"] == rule_id
    assert second["event_count"] == 1001


def test_the_hourly_cap_of_a_channel_holds_back_and_reports(stack: Stack, channel: int) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(update(alert_channels).where(alert_channels.c.id == channel).values(hourly_cap=2))
    rule(stack, channel, trigger="level", level="error", cooldown_minutes=0)
    for _ in range(5):
        send(stack, event())
    assert len(outbox(stack)) == 2
    with stack.services.engine.begin() as connection:
        held = connection.execute(select(alert_channels.c.held_back).where(alert_channels.c.id == channel)).scalar()
        assert held == 3
        # An hour later the cap has room again; the next message reports what was missed.
        connection.execute(update(alert_outbox).values(created_at=alert_outbox.c.created_at - 3700))
    send(stack, event())
    assert outbox(stack)[-1]["held_back"] == 3


def test_disabled_rules_and_rules_without_channels_do_not_fire(stack: Stack, channel: int) -> None:
    rule_id = rule(stack, channel, trigger="level", level="error", cooldown_minutes=0)
    with stack.services.engine.begin() as connection:
        manage.update_rule(connection, 1, rule_id, {"enabled": False})
        other = manage.create_channel(connection, 1, name="gone", kind="webhook", config={"url": "http://127.0.0.1:9/"})
    rule(stack, other, trigger="level", level="error", cooldown_minutes=0)
    with stack.services.engine.begin() as connection:
        assert manage.delete_channel(connection, 1, other)  # the rule stays, with no channel left
        assert len(manage.list_rules(connection, 1)) == 2
    send(stack, event())
    assert outbox(stack) == []


def test_notifications_carry_scrubbed_data_only(stack: Stack, channel: int) -> None:
    rule(stack, channel, trigger="new_issue")
    send(stack, event("POST https://api.example.com/hook?token=abcdef123456 failed"))
    assert "abcdef123456" not in json.dumps(outbox(stack))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"trigger": "sometimes"}, "trigger must be one of"),
        ({"trigger": "event_frequency", "window_minutes": 5}, "needs threshold"),
        ({"trigger": "impact", "threshold": 1, "window_minutes": 5, "impact_kind": "cats"}, "impact_kind"),
        ({"trigger": "level", "level": "loud"}, "level must be one of"),
        ({"trigger": "new_issue", "filters": {"colour": "red"}}, "filters may only hold"),
        ({"trigger": "new_issue", "channels": []}, "needs channels"),
        ({"trigger": "new_issue", "channels": [999]}, "no channel 999"),
    ],
)
def test_invalid_rules_are_refused(stack: Stack, channel: int, spec: dict[str, Any], message: str) -> None:
    with stack.services.engine.begin() as connection, pytest.raises(manage.AlertError, match=message):
        manage.create_rule(connection, 1, {"name": "x", "channels": [channel], **spec})
    with stack.services.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(alert_rules)).scalar_one() == 0


def test_a_private_target_is_refused_when_saved_if_the_settings_say_so(stack: Stack) -> None:
    config = {"url": "http://127.0.0.1:9/hook"}
    strict = dataclasses.replace(stack.settings, alerts_allow_private_targets=False)
    with stack.services.engine.begin() as connection:
        with pytest.raises(manage.AlertError, match="private"):
            manage.create_channel(connection, 1, name="hook", kind="webhook", config=config, settings=strict)
        assert manage.create_channel(connection, 1, name="hook", kind="webhook", config=config, settings=stack.settings)


def test_an_email_channel_can_address_the_administrators(stack: Stack) -> None:
    with stack.services.engine.begin() as connection:
        channel = manage.create_channel(connection, 1, name="admins", kind="email", config={"admins": True})
        shown = [c for c in manage.list_channels(connection, 1) if c["id"] == channel]
        with pytest.raises(manage.AlertError, match="admins"):
            manage.create_channel(connection, 1, name="x", kind="email", config={"admins": "yes"})
        with pytest.raises(manage.AlertError, match="to:"):
            manage.create_channel(connection, 1, name="x", kind="email", config={})
    assert shown[0]["config"] == {"to": [], "admins": True}


def test_an_email_channel_without_any_recipient_fails_permanently(stack: Stack) -> None:
    from stackwatch.server.alerts import channels
    from stackwatch.server.alerts.channels.base import ChannelError

    settings = dataclasses.replace(stack.settings, smtp_host="127.0.0.1")
    with pytest.raises(ChannelError, match="no recipients") as failure:
        channels.get("email").build({"to": []}, settings)
    assert failure.value.permanent
