"""An event's time when the sender's clock is wrong: Relay's rules for clock drift, in the digest.

Devices with a dead clock battery stamp their events 1970, a phone set to the wrong year stamps them years back
or ahead, a queue replayed after months sends old events. Stored as sent, such events sort outside every chart,
make an issue "first seen" decades ago, and land outside the retention window (to be deleted at once, or kept
in a partition nobody drops). So, as Relay does:

1. **The envelope's ``sent_at``** (the SDK's clock when it sent the envelope), when it is at least
   :data:`MIN_DRIFT` away from the receive time, measures the sender's clock: the whole difference is added to the
   event's timestamp and its breadcrumbs' (the order and spacing of what happened stays as the device saw it).
   Smaller differences are network delay or an SDK's retry queue, and are left alone.
2. **A timestamp still more than ``max_future`` ahead of the receive time, or more than ``max_past`` behind it**
   (the project's retention window), is replaced by the receive time, and the breadcrumbs move with it.

Either correction is recorded where Relay records it, in the event's ``_meta``:
``_meta.timestamp[""] = {"err": [[kind, {"sdk_time": …, "server_time": …}]], "val": <the timestamp as sent>}``,
``kind`` one of ``clock_drift`` (from ``sent_at``; ``sdk_time`` is then ``sent_at``), ``past_timestamp`` and
``future_timestamp`` (``sdk_time`` is the timestamp that was out of range), times in RFC 3339. The scrubber
drops ``err`` and ``val`` from the ``_meta`` a client sends, so only the digest can write this note.

A timestamp that is not a time at all (``"yesterday"``, ``true``) is replaced by the receive time silently, as
before: there is nothing to keep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["DAY", "MAX_FUTURE", "MAX_PAST", "MIN_DRIFT", "Clock", "correct_timestamps", "read_timestamp", "rfc3339"]

DAY = 86_400.0
# Future timestamps further ahead than this are clock skew (STACKWATCH_MAX_FUTURE_SECONDS; Relay's default too).
MAX_FUTURE = 60.0
# How far back a timestamp may be when no retention window is configured (Relay's default).
MAX_PAST = 30 * DAY
# The smallest difference between ``sent_at`` and the receive time that is taken for a wrong clock (Relay's):
# less is latency and retries; 55 minutes still catches a clock set to the wrong time zone.
MIN_DRIFT = 55 * 60.0
_KEPT_ORIGINAL = 64  # characters of a timestamp string kept in ``_meta`` as the value sent


@dataclass(frozen=True, slots=True)
class Clock:
    """What decides an event's time: when it arrived, the window around that, and the envelope's ``sent_at``."""

    received_at: float
    max_past: float = MAX_PAST
    max_future: float = MAX_FUTURE
    sent_at: float | None = None


def read_timestamp(value: Any) -> float | None:
    """Seconds since the epoch from a number, a numeric string or an ISO 8601 string (naive means UTC)."""
    stamp: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = float(value)
    elif isinstance(value, str):
        try:
            stamp = float(value)
        except ValueError:
            stamp = _iso(value)
    return stamp if stamp is not None and math.isfinite(stamp) else None


def _iso(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def rfc3339(stamp: float) -> str:
    """``2026-12-04T18:00:00.250000+00:00``; a time beyond what a calendar date holds as its number."""
    try:
        return datetime.fromtimestamp(stamp, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return repr(stamp)


def correct_timestamps(data: dict[str, Any], clock: Clock) -> float:
    """Set ``data["timestamp"]`` to the event's corrected time (returned), move its breadcrumbs along, and note
    any correction in ``data["_meta"]``."""
    sent = data.get("timestamp")
    stamp = read_timestamp(sent)
    if stamp is None:
        data["timestamp"] = clock.received_at
        return clock.received_at
    errors: list[list[Any]] = []
    shift = 0.0
    if clock.sent_at is not None and abs(clock.received_at - clock.sent_at) >= MIN_DRIFT:
        shift = clock.received_at - clock.sent_at
        errors.append(_error("clock_drift", clock.sent_at, clock.received_at))
    kind = _out_of_range(stamp + shift, clock)
    if kind is not None:
        errors.append(_error(kind, stamp + shift, clock.received_at))
        shift = clock.received_at - stamp
    if shift:
        _shift_breadcrumbs(data.get("breadcrumbs"), shift)
    corrected = stamp + shift if kind is None else clock.received_at
    data["timestamp"] = corrected
    if errors:
        _note(data, {"err": errors, "val": _original(sent)})
    return corrected


def _out_of_range(stamp: float, clock: Clock) -> str | None:
    if stamp > clock.received_at + clock.max_future:
        return "future_timestamp"
    if stamp < clock.received_at - clock.max_past:
        return "past_timestamp"
    return None


def _error(kind: str, sdk_time: float, server_time: float) -> list[Any]:
    return [kind, {"sdk_time": rfc3339(sdk_time), "server_time": rfc3339(server_time)}]


def _original(value: Any) -> Any:
    return value[:_KEPT_ORIGINAL] if isinstance(value, str) else value


def _note(data: dict[str, Any], entry: dict[str, Any]) -> None:
    meta = data.get("_meta")
    if not isinstance(meta, dict):
        meta = data["_meta"] = {}
    node = meta.get("timestamp")
    if not isinstance(node, dict):
        node = meta["timestamp"] = {}
    here = node.get("")
    node[""] = {**here, **entry} if isinstance(here, dict) else entry


def _shift_breadcrumbs(breadcrumbs: Any, shift: float) -> None:
    """Move every breadcrumb's time by ``shift`` seconds (those without a readable time stay as they are)."""
    crumbs = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    for crumb in crumbs if isinstance(crumbs, list) else []:
        if isinstance(crumb, dict):
            stamp = read_timestamp(crumb.get("timestamp"))
            if stamp is not None:
                crumb["timestamp"] = stamp + shift
