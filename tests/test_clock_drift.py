"""Event timestamps from wrong clocks (digest/timestamps.py): replaced by the receive time outside the window, the
original kept in ``_meta`` as Relay keeps it, shown on the event page; ``sent_at`` corrects a drifted clock."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stackwatch.server.digest.timestamps import DAY, rfc3339
from stackwatch.server.services import Services
from stackwatch.server.storage import accounts
from tests.conftest import PYTHON_KEY, ServerFactory, Stack
from tests.support import AUTH, event_envelope, exception_event, normalized, send_ok
from tests.test_web_auth import PASSWORD, login

RECEIVED = 1_800_000_000.0  # support.normalized's receive time
YEAR = 365 * DAY


def timestamp_note(data: dict[str, Any]) -> dict[str, Any] | None:
    note: dict[str, Any] | None = data.get("_meta", {}).get("timestamp", {}).get("")
    return note


def crumbs(*stamps: Any) -> dict[str, Any]:
    return {
        "values": [{"timestamp": stamp, "category": "http", "message": f"step {n}"} for n, stamp in enumerate(stamps)]
    }


@pytest.mark.parametrize(
    ("sent", "kind", "sdk_time"),
    [
        (86_400, "past_timestamp", "1970-01-02T00:00:00+00:00"),  # a clock that lost its battery
        (0, "past_timestamp", "1970-01-01T00:00:00+00:00"),
        (RECEIVED - 3 * YEAR, "past_timestamp", rfc3339(RECEIVED - 3 * YEAR)),
        ("2027-01-17T08:00:00Z", "future_timestamp", "2027-01-17T08:00:00+00:00"),  # two days ahead
        (RECEIVED * 1000, "future_timestamp", rfc3339(RECEIVED * 1000)),  # milliseconds sent as seconds
    ],
)
def test_a_timestamp_outside_the_window_becomes_the_receive_time(sent: Any, kind: str, sdk_time: str) -> None:
    event = normalized(exception_event(timestamp=sent))
    assert event.timestamp == RECEIVED and event.data["timestamp"] == RECEIVED
    assert timestamp_note(event.data) == {
        "err": [[kind, {"sdk_time": sdk_time, "server_time": "2027-01-15T08:00:00+00:00"}]],
        "val": sent,
    }


@pytest.mark.parametrize("offset", [-29 * DAY, -60.0, 0.0, 59.0])
def test_a_timestamp_inside_the_window_is_kept(offset: float) -> None:
    event = normalized(exception_event(timestamp=RECEIVED + offset))
    assert event.timestamp == RECEIVED + offset
    assert timestamp_note(event.data) is None


def test_the_window_is_the_one_given() -> None:
    """The digest passes the project's retention as ``max_past`` and STACKWATCH_MAX_FUTURE_SECONDS as
    ``max_future``; without either, 30 days and 60 seconds."""
    old, ahead = RECEIVED - 100 * DAY, RECEIVED + 2 * DAY
    assert normalized(exception_event(timestamp=old)).timestamp == RECEIVED
    assert normalized(exception_event(timestamp=old), max_past=400 * DAY).timestamp == old
    assert normalized(exception_event(timestamp=ahead)).timestamp == RECEIVED
    assert normalized(exception_event(timestamp=ahead), max_future=3 * DAY).timestamp == ahead
    assert normalized(exception_event(timestamp=RECEIVED + 30), max_future=0).timestamp == RECEIVED


def test_breadcrumbs_move_with_a_replaced_timestamp() -> None:
    raw = exception_event(timestamp=1000.0, breadcrumbs=crumbs(990.0, "1970-01-01T00:16:35Z", "not a time"))
    event = normalized(raw)
    values = event.data["breadcrumbs"]["values"]
    assert [crumb["timestamp"] for crumb in values] == [RECEIVED - 10, RECEIVED - 5, "not a time"]


def test_what_is_not_a_time_becomes_the_receive_time_without_a_note() -> None:
    for sent in ("yesterday", True, None, [], "NaN", "inf"):
        event = normalized(exception_event(timestamp=sent))
        assert event.timestamp == RECEIVED, sent
        assert timestamp_note(event.data) is None, sent


def test_sent_at_corrects_a_drifted_clock() -> None:
    """The device's clock is three days behind: ``sent_at`` says so, and every time moves by the difference."""
    behind = 3 * DAY
    raw = exception_event(timestamp=RECEIVED - behind - 2, breadcrumbs=crumbs(RECEIVED - behind - 7))
    event = normalized(raw, sent_at=RECEIVED - behind)
    assert event.timestamp == pytest.approx(RECEIVED - 2)
    assert event.data["breadcrumbs"]["values"][0]["timestamp"] == pytest.approx(RECEIVED - 7)
    assert timestamp_note(event.data) == {
        "err": [["clock_drift", {"sdk_time": rfc3339(RECEIVED - behind), "server_time": rfc3339(RECEIVED)}]],
        "val": RECEIVED - behind - 2,
    }


def test_sent_at_corrects_a_clock_that_runs_ahead() -> None:
    event = normalized(exception_event(timestamp=RECEIVED + 2 * 3600 - 1), sent_at=RECEIVED + 2 * 3600)
    assert event.timestamp == pytest.approx(RECEIVED - 1)
    assert timestamp_note(event.data)["err"][0][0] == "clock_drift"  # type: ignore[index]


def test_a_small_difference_to_sent_at_is_latency_not_drift() -> None:
    """An SDK's retry queue or a slow network: under 55 minutes nothing is corrected."""
    event = normalized(exception_event(timestamp=RECEIVED - 1800), sent_at=RECEIVED - 1700)
    assert event.timestamp == RECEIVED - 1800
    assert timestamp_note(event.data) is None


def test_a_corrected_timestamp_may_still_be_outside_the_window() -> None:
    """``sent_at`` moves the event by two hours, yet it is still years old: both are noted, as Relay does."""
    event = normalized(exception_event(timestamp=RECEIVED - 3 * YEAR), sent_at=RECEIVED - 7200)
    assert event.timestamp == RECEIVED
    note = timestamp_note(event.data)
    assert note is not None and [error[0] for error in note["err"]] == ["clock_drift", "past_timestamp"]
    assert note["err"][1][1]["sdk_time"] == rfc3339(RECEIVED - 3 * YEAR + 7200)


def test_a_note_sent_by_the_client_is_not_believed() -> None:
    raw = exception_event(timestamp=RECEIVED - 10)
    raw["_meta"] = {"timestamp": {"": {"err": [["past_timestamp", {"sdk_time": "1970-01-01T00:00:00+00:00"}]]}}}
    assert timestamp_note(normalized(raw).data) is None


# --- through the digest -------------------------------------------------------------------------------------------


def stored(stack: Stack, event_id: str) -> dict[str, Any]:
    response = stack.api(f"/events/{event_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_window_back_is_the_projects_retention(stack: Stack) -> None:
    """The server's 90 days (STACKWATCH_RETENTION_DAYS) unless the project keeps events longer or shorter."""
    now = time.time()
    hundred_days = send_ok(stack, exception_event(timestamp=now - 100 * DAY))
    sixty_days = send_ok(stack, exception_event(timestamp=now - 60 * DAY))
    stack.digest()
    assert stored(stack, hundred_days)["data"]["timestamp"] == stored(stack, hundred_days)["data"]["received"]
    assert stored(stack, sixty_days)["data"]["timestamp"] == pytest.approx(now - 60 * DAY)
    with stack.services.engine.begin() as connection:
        assert accounts.update_project(connection, "python", retention_days=400)
    kept = send_ok(stack, exception_event(timestamp=now - YEAR))
    stack.digest()
    assert stored(stack, kept)["data"]["timestamp"] == pytest.approx(now - YEAR)
    with stack.services.engine.begin() as connection:
        assert accounts.update_project(connection, "python", retention_days=30)
    replaced = send_ok(stack, exception_event(timestamp=now - 60 * DAY))
    stack.digest()
    assert timestamp_note(stored(stack, replaced)["data"])["err"][0][0] == "past_timestamp"  # type: ignore[index]


def test_sent_at_from_the_envelope_header_corrects_the_clock(stack: Stack) -> None:
    now = time.time()
    behind = 5 * DAY
    event = exception_event(timestamp=now - behind - 3)
    header = {"event_id": event["event_id"], "sent_at": datetime.fromtimestamp(now - behind, UTC).isoformat()}
    response = stack.client.post(
        "/api/1/envelope/", content=event_envelope(event, header), headers={"X-Sentry-Auth": AUTH}
    )
    assert response.status_code == 200, response.text
    stack.digest()
    data = stored(stack, event["event_id"])["data"]
    assert data["timestamp"] == pytest.approx(data["received"] - 3, abs=0.5)
    assert timestamp_note(data)["err"][0][0] == "clock_drift"  # type: ignore[index]


def _send_over_http(base_url: str, event: dict[str, Any]) -> None:
    response = httpx.post(
        f"{base_url}/api/1/envelope/",
        content=event_envelope(event),
        headers={"X-Sentry-Auth": f"Sentry sentry_key={PYTHON_KEY}, sentry_version=7"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_end_to_end_the_event_page_shows_the_timestamp_it_was_sent_with(
    start_server: ServerFactory, services: Services
) -> None:
    """A running server with STACKWATCH_MAX_FUTURE_SECONDS=7200: an event stamped 1970 and one three hours ahead
    get the receive time and the page says what they were sent with; one an hour ahead is kept as sent."""
    server = start_server(STACKWATCH_MAX_FUTURE_SECONDS="7200")
    now = time.time()
    events = {
        "1970": exception_event("ClockError", "battery died", timestamp=86_400),
        "ahead": exception_event("ClockError", "battery died", timestamp=now + 3 * 3600),
        "kept": exception_event("ClockError", "battery died", timestamp=now + 3600),
    }
    for event in events.values():
        _send_over_http(server.base_url, event)
    server.wait_digested()
    api = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30)
    found = {name: api.get(f"/api/v1/events/{event['event_id']}").json() for name, event in events.items()}
    assert found["1970"]["data"]["timestamp"] == found["1970"]["data"]["received"]
    assert found["ahead"]["data"]["timestamp"] == found["ahead"]["data"]["received"]
    assert found["kept"]["data"]["timestamp"] == pytest.approx(now + 3600)

    with services.engine.begin() as connection:
        accounts.create_user(connection, "ops@example.com", PASSWORD, admin=True)
    browser = httpx.Client(base_url=server.base_url, timeout=30)
    assert login(browser, "ops@example.com").status_code == 303  # type: ignore[arg-type]
    issue = found["1970"]["issue_id"]
    received = datetime.fromtimestamp(found["1970"]["data"]["received"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    page = browser.get(f"/issues/{issue}", params={"event": events["1970"]["event_id"]})
    assert page.status_code == 200, page.text
    note = re.search(r'<p class="clock-drift">(.*?)</p>', page.text, re.S)
    assert note is not None, page.text
    assert note.group(1).startswith(
        f"Sent with timestamp 1970-01-02 00:00:00 UTC (clock drift: older than the retention window; "
        f"received at {received})"
    )
    ahead = browser.get(f"/issues/{issue}", params={"event": events["ahead"]["event_id"]}).text
    assert "clock drift: in the future" in ahead
    kept = browser.get(f"/issues/{issue}", params={"event": events["kept"]["event_id"]}).text
    assert 'class="clock-drift"' not in kept
    assert "timestamp" not in found["kept"]["data"].get("_meta", {})
