"""The shared redaction vectors (``tests/vectors/scrub.json``) as the leak tests use them.

``test_scrub.py`` runs every vector against the engine; the leak tests run the ones written for the audit's gaps
(``"gap": true``) through a real digest (``test_leaks.py``) and through a real component process
(``test_sdk_leaks.py``), and look for their secrets in what is stored, served and sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["GAP_EVENTS", "GAP_KEYS", "GAP_STRINGS", "VECTORS", "forbidden"]

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "scrub.json").read_text(encoding="utf-8")
)
# Only the always-on rules: the leak tests run with the default project and SDK settings.
_GAPS = [case for case in VECTORS if case.get("gap") and not case.get("options")]
GAP_STRINGS = [case for case in _GAPS if isinstance(case["input"], str)]
GAP_KEYS = [case for case in _GAPS if isinstance(case["input"], dict) and "key" in case["input"]]
GAP_EVENTS = [case for case in _GAPS if isinstance(case["input"], dict) and "event" in case["input"]]

# Secrets shorter than this are too likely to occur by chance in unrelated stored bytes ("guest", "abc123" of a
# fixture project key): the exact comparisons of the served values cover them.
_MIN_SECRET = 7


def _texts(value: Any) -> list[str]:
    """Every string (keys too) in a vector's value."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(str(k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def forbidden(cases: list[dict[str, Any]]) -> list[str]:
    """The secrets of ``cases`` that must be found nowhere downstream.

    Left out: short ones, and those that are also part of what some vector keeps (its expected output, or the
    input of a negative) -- a password "guest" next to the user "guest" is not a leak when the user shows.
    """
    kept = "\n".join(text for case in VECTORS for text in _texts(case["expected"]))
    secrets = {s for case in cases for s in case.get("secrets", ()) if isinstance(s, str)}
    return sorted(s for s in secrets if len(s) >= _MIN_SECRET and s not in kept)
