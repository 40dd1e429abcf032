"""The one exception ingest code raises for a request it refuses; routes turn it into the answer."""

from __future__ import annotations

__all__ = ["IngestError"]


class IngestError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
