"""Comments on issues (``schema.issue_comments``): Markdown as written, with who wrote it and when.

Adding a comment records a ``comment`` entry in the issue's activity log in the same transaction. The text is
kept as written; it is rendered (safely: ``web/markdown.py``) only when shown on the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from stackwatch.server.storage import activity
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import issue_comments

__all__ = ["MAX_PAGE", "MAX_TEXT", "Comment", "CommentError", "add_comment", "comments_by_id", "list_comments"]

MAX_TEXT = 10_000  # characters of one comment
MAX_PAGE = 500  # comments one read returns at most


class CommentError(ValueError):
    """A comment that cannot be stored; the message says why, for the person who wrote it."""


@dataclass(frozen=True, slots=True)
class Comment:
    id: int
    issue_id: int
    user_id: int | None
    author: str
    text: str
    created_at: float


def check_text(text: str) -> str:
    """The comment's text as stored: 1 to ``MAX_TEXT`` characters, not only white space, and no NUL (PostgreSQL
    cannot store it in text)."""
    if not text.strip():
        raise CommentError("a comment needs some text")
    if len(text) > MAX_TEXT:
        raise CommentError(f"a comment has at most {MAX_TEXT:,} characters; this one has {len(text):,}")
    if "\x00" in text:
        raise CommentError("a comment cannot contain NUL characters")
    return text


def add_comment(connection: Connection, issue_id: int, text: str, *, by: activity.Actor) -> Comment:
    """Store a comment by ``by`` and record it in the activity log; in the caller's write transaction."""
    moment = now()
    values = {"issue_id": issue_id, "user_id": by.user_id, "author": by.name[:320], "text": check_text(text)}
    comment_id = int(
        connection.execute(
            insert(issue_comments).values(**values, created_at=moment).returning(issue_comments.c.id)
        ).scalar_one()
    )
    activity.record_all(
        connection,
        [activity.Activity(issue_id=issue_id, kind="comment", actor=by, data={"comment_id": comment_id}, at=moment)],
    )
    return Comment(comment_id, issue_id, by.user_id, by.name[:320], text, moment)


def _comment(row: Any) -> Comment:
    return Comment(int(row.id), int(row.issue_id), row.user_id, row.author, row.text, float(row.created_at))


def list_comments(connection: Connection, issue_id: int, *, after: int = 0, limit: int = MAX_PAGE) -> list[Comment]:
    """The issue's comments, oldest first, from the one after id ``after`` on."""
    query = (
        select(issue_comments)
        .where(issue_comments.c.issue_id == issue_id, issue_comments.c.id > after)
        .order_by(issue_comments.c.id)
        .limit(min(max(limit, 1), MAX_PAGE))
    )
    return [_comment(row) for row in connection.execute(query)]


def comments_by_id(connection: Connection, issue_id: int, ids: list[int]) -> dict[int, Comment]:
    """The issue's comments with these ids (the activity log's ``comment`` entries name them)."""
    if not ids:
        return {}
    query = select(issue_comments).where(issue_comments.c.issue_id == issue_id, issue_comments.c.id.in_(ids))
    return {comment.id: comment for comment in map(_comment, connection.execute(query))}
