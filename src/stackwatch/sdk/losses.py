"""What the SDK could not deliver, counted for client reports.

A client report (https://develop.sentry.dev/sdk/telemetry/client-reports/) is an envelope item
``{"timestamp": …, "discarded_events": [{"reason": …, "category": …, "quantity": …}]}`` that tells the server how
much was dropped on the client side and why. The quantities follow sentry-sdk's ``record_lost_event``: one per
event, spans counted with their transaction, attachments and log items counted in bytes as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from sentry_sdk.envelope import Envelope, Item, PayloadRef

__all__ = ["LostEvents", "item_quantities"]


def item_quantities(item: Item) -> list[tuple[str, int]]:
    """The ``(data category, quantity)`` pairs that losing ``item`` counts as."""
    category = str(item.data_category)
    if category == "transaction":
        event = item.get_transaction_event() or {}
        spans = event.get("spans") or []
        return [("transaction", 1), ("span", (len(spans) if isinstance(spans, list) else 0) + 1)]
    if category in ("span", "log_item", "trace_metric"):
        count = item.headers.get("item_count")
        pairs = [(category, count if isinstance(count, int) and count > 0 else 1)]
        if category in ("log_item", "trace_metric"):
            unit = "log_byte" if category == "log_item" else "trace_metric_byte"
            pairs.append((unit, len(item.get_bytes())))
        return pairs
    if category == "attachment":
        # An empty attachment still counts as one, as in sentry-sdk.
        return [("attachment", len(item.get_bytes()) or 1)]
    return [(category, 1)]


class LostEvents:
    """Thread-safe counters of discarded data by ``(category, reason)``, taken out as a client report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def add(self, reason: str, category: str, quantity: int = 1) -> None:
        if quantity <= 0:
            return
        with self._lock:
            key = (category, reason)
            self._counts[key] = self._counts.get(key, 0) + quantity

    def add_all(self, reason: str, pairs: Iterable[tuple[str, int]]) -> None:
        for category, quantity in pairs:
            self.add(reason, category, quantity)

    def pending(self) -> bool:
        return bool(self._counts)

    def take_report(self) -> Envelope | None:
        """An envelope with one ``client_report`` item holding everything counted so far (and reset), or None."""
        with self._lock:
            counts, self._counts = self._counts, {}
        if not counts:
            return None
        discarded = [
            {"reason": reason, "category": category, "quantity": quantity}
            for (category, reason), quantity in sorted(counts.items())
        ]
        item = Item(PayloadRef(json={"timestamp": time.time(), "discarded_events": discarded}), type="client_report")
        sent_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return Envelope(headers={"sent_at": sent_at}, items=[item])
