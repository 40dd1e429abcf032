"""Replace the variable parts of a message (ids, numbers, addresses, times) with placeholders.

Two messages that differ only in such parts — ``user 42 not found`` and ``user 97 not found`` — become the
same text and so the same issue. Order matters: the broad patterns (URLs, emails) run before the narrow
ones (numbers) so that a URL is replaced whole instead of having its digits picked out.
"""

from __future__ import annotations

import re

__all__ = ["parameterize"]

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("<url>", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)),
    ("<email>", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("<uuid>", re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.IGNORECASE)),
    (
        "<date>",
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
            r"|\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"
        ),
    ),
    (
        "<ip>",
        re.compile(
            r"\b(?:\d{1,3}\.){3}\d{1,3}\b"
            r"|\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b"
            # IPv6 with a ``::`` gap (fe80::1, ::1, 2001:db8::ff00:42); C++'s ``std::vector`` is no address.
            r"|(?<![\w:])(?=[0-9a-f:]*[0-9a-f])(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?::"
            r"(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?(?![\w:])",
            re.IGNORECASE,
        ),
    ),
    ("<hex>", re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE)),
    # A number glued to a word by ``_`` or ``-`` (run_42) is an id and goes; one glued to letters (utf8,
    # E1001) is part of a name or an error code and stays.
    ("<int>", re.compile(r"(?<![a-z\d])\d+(?:\.\d+)?", re.IGNORECASE)),
)


def parameterize(message: str) -> str:
    for placeholder, pattern in _PATTERNS:
        message = pattern.sub(placeholder, message)
    return message
