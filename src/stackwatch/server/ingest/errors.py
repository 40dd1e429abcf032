"""The one exception ingest code raises for a request it refuses; routes turn it into the answer."""

from __future__ import annotations

import re

__all__ = ["MAX_HEADER_CHARS", "IngestError", "header_safe"]

# Long enough for every message ingest writes; a message quoting a huge client value is cut, not the answer.
MAX_HEADER_CHARS = 500
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


class IngestError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def header_safe(text: str) -> str:
    """``text`` fit for an HTTP header whatever it quotes from the client: printable ASCII, escapes for the rest.

    Header values are written as Latin-1, and a message may quote a project id or a header the client sent
    (``"١"``, an unpaired surrogate from invalid UTF-8 in the path, a control character): any of those would
    turn the refusal itself into a 500.
    """
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    escaped = _UNPRINTABLE.sub(lambda match: f"\\x{ord(match.group()):02x}", escaped)
    return escaped if len(escaped) <= MAX_HEADER_CHARS else escaped[: MAX_HEADER_CHARS - 3] + "..."
