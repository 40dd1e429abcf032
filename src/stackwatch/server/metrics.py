"""Counters, exposed at ``/metrics`` in the Prometheus text format.

Ingest counts in memory, per process. The digest's counters are kept in the database (``digest_state`` rows,
added to in each batch's transaction), because the digest may run in another process or on another machine
than the one answering ``/metrics``: they are exact, survive restarts, and agree across every process.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from sqlalchemy import Connection, func, select

from stackwatch.server.storage.schema import alert_channels, alert_outbox, digest_state
from stackwatch.server.storage.upsert import upsert_add

__all__ = ["METRICS", "Metrics", "alert_gauges", "database_counters", "record_counters"]

_PREFIX = "stackwatch_"

_HELP = {
    "stackwatch_ingest_requests_total": "Ingest requests by answer status.",
    "stackwatch_ingest_envelopes_total": "Envelopes written to the inbox.",
    "stackwatch_ingest_bytes_total": "Decoded envelope bytes written to the inbox.",
    "stackwatch_ingest_attachments_dropped_total": "Attachments dropped by ingest, by reason.",
    "stackwatch_ingest_attachment_bytes_dropped_total": "Bytes of attachments dropped by ingest, by reason.",
    "stackwatch_digest_events_total": "Events stored by the digest.",
    "stackwatch_digest_duplicates_total": "Events skipped because their event_id was already stored.",
    "stackwatch_digest_invalid_items_total": "Items the digest could not read and skipped.",
    "stackwatch_digest_batches_total": "Digest batches committed.",
    "stackwatch_digest_failures_total": "Digest batches that failed and were retried.",
    "stackwatch_digest_quarantined_total": "Envelopes that failed to digest even alone, moved to quarantine.",
    "stackwatch_issues_created_total": "Issues created.",
    "stackwatch_issues_regressed_total": "Resolved issues reopened by a new event.",
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        with self._lock:
            self._counters[(name, tuple(sorted(labels.items())))] += amount

    def render(self, gauges: Mapping[str, tuple[str, float]], stored: Mapping[str, int] | None = None) -> str:
        lines = []
        with self._lock:
            items = sorted(self._counters.items())
        items = sorted([*items, *(((name, ()), value) for name, value in (stored or {}).items())])
        seen: set[str] = set()
        for (name, labels), value in items:
            if name not in seen:
                seen.add(name)
                lines += [f"# HELP {name} {_HELP.get(name, name)}", f"# TYPE {name} counter"]
            label_text = ",".join(f'{key}="{val}"' for key, val in labels)
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
        for name, (help_text, gauge) in sorted(gauges.items()):
            # Whole numbers in full: ``:g`` would write a byte count as 3.14573e+06.
            shown = str(int(gauge)) if float(gauge).is_integer() else f"{gauge:g}"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {shown}"]
        return "\n".join(lines) + "\n"


METRICS = Metrics()


def record_counters(connection: Connection, amounts: Mapping[str, int]) -> None:
    """Add to database-kept counters, inside the caller's transaction."""
    rows = [{"name": name, "value": amount} for name, amount in amounts.items() if amount]
    upsert_add(connection, digest_state, rows, ["name"], ["value"])


def database_counters(connection: Connection) -> dict[str, int]:
    query = select(digest_state.c.name, digest_state.c.value).where(digest_state.c.name.like(f"{_PREFIX}%"))
    counters = {name: int(value) for name, value in connection.execute(query)}
    for name in _HELP:  # every digest counter is shown, zero until it first counts
        if name.startswith("stackwatch_digest_") or name.startswith("stackwatch_issues_"):
            counters.setdefault(name, 0)
    return counters


def alert_gauges(connection: Connection, unhealthy_after: int) -> dict[str, tuple[str, float]]:
    """Notifications by outbox status, and channels failing, for ``/metrics``."""
    query = select(alert_outbox.c.status, func.count()).group_by(alert_outbox.c.status)
    by_status: dict[str, int] = {str(status): int(count) for status, count in connection.execute(query)}
    unhealthy = connection.execute(
        select(func.count()).select_from(alert_channels).where(alert_channels.c.consecutive_failures >= unhealthy_after)
    ).scalar_one()
    return {
        "stackwatch_alerts_pending": ("Notifications waiting for delivery.", by_status.get("pending", 0)),
        "stackwatch_alerts_sent": ("Notifications delivered (in the outbox).", by_status.get("sent", 0)),
        "stackwatch_alerts_failed": ("Notifications given up (in the outbox).", by_status.get("failed", 0)),
        "stackwatch_alert_channels_unhealthy": ("Alert channels failing repeatedly.", unhealthy),
    }
