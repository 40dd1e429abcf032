"""An event's attachments: the list the issue page shows, and the download answer (administrators only).

An attachment is whatever a client sent — an HTML file, a script, an SVG — so it is never answered with the type the
client gave: the download is ``application/octet-stream``, ``Content-Disposition: attachment`` with a file name made
safe, and the dashboard's security headers (``nosniff``, the CSP), so that no browser renders it as a page of this
site. Its name and content type are event data: the page shows them through autoescape like every other value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, and_, select
from starlette.responses import Response

from stackwatch.server.storage.schema import attachments, events

__all__ = ["AttachmentView", "download", "event_attachments", "find_attachment"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 150  # characters of a download's file name; longer names are cut


@dataclass(frozen=True, slots=True)
class AttachmentView:
    id: int
    filename: str
    content_type: str
    attachment_type: str
    size: int


def event_attachments(connection: Connection, project_id: int, event_id: str) -> list[AttachmentView]:
    """The attachments stored with an event, in the order they were stored (without their data)."""
    query = (
        select(
            attachments.c.id,
            attachments.c.filename,
            attachments.c.content_type,
            attachments.c.attachment_type,
            attachments.c.size,
        )
        .where(attachments.c.project_id == project_id, attachments.c.event_id == event_id)
        .order_by(attachments.c.id)
    )
    return [
        AttachmentView(int(row.id), row.filename, row.content_type or "", row.attachment_type, int(row.size))
        for row in connection.execute(query)
    ]


def find_attachment(connection: Connection, attachment_id: int, issue_id: int) -> Any:
    """The attachment (name and data) when it belongs to an event of the issue; ``None`` otherwise."""
    query = (
        select(attachments.c.filename, attachments.c.data)
        .join(
            events,
            and_(events.c.project_id == attachments.c.project_id, events.c.event_id == attachments.c.event_id),
        )
        .where(attachments.c.id == attachment_id, events.c.issue_id == issue_id)
        .limit(1)
    )
    return connection.execute(query).first()


def _disposition(filename: str) -> str:
    """``attachment`` with the name twice: plain ASCII for every client, and RFC 6266's UTF-8 ``filename*``.

    Separators and control characters are taken out (no path, no header injection); the UTF-8 form is
    percent-encoded, so quotes and semicolons cannot end the value either.
    """
    name = "".join("_" if char in "/\\" or not char.isprintable() else char for char in filename)[:MAX_NAME]
    fallback = _UNSAFE.sub("_", name).strip("._") or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name.strip() or fallback, safe='')}"


def download(filename: str, data: bytes) -> Response:
    """The attachment as a file to save, never as a page: the route class adds ``nosniff`` and the CSP."""
    headers = {"Content-Disposition": _disposition(filename)}
    return Response(data, media_type="application/octet-stream", headers=headers)
