"""Process-wide counters, exposed at ``/metrics`` in the Prometheus text format."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

__all__ = ["METRICS", "Metrics"]

_HELP = {
    "stackwatch_ingest_requests_total": "Ingest requests by answer status.",
    "stackwatch_ingest_envelopes_total": "Envelopes written to the inbox.",
    "stackwatch_ingest_bytes_total": "Decoded envelope bytes written to the inbox.",
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

    def value(self, name: str, **labels: str) -> int:
        return self._counters[(name, tuple(sorted(labels.items())))]

    def render(self, gauges: Mapping[str, tuple[str, float]]) -> str:
        lines = []
        with self._lock:
            items = sorted(self._counters.items())
        seen: set[str] = set()
        for (name, labels), value in items:
            if name not in seen:
                seen.add(name)
                lines += [f"# HELP {name} {_HELP.get(name, name)}", f"# TYPE {name} counter"]
            label_text = ",".join(f'{key}="{val}"' for key, val in labels)
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
        for name, (help_text, gauge) in sorted(gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {gauge:g}"]
        return "\n".join(lines) + "\n"


METRICS = Metrics()
