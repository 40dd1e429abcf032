"""Dashboard sessions: a signed cookie with the user's id, their session version and a CSRF token.

Nothing is stored on the server for a session; the ``session_version`` in the users table is what revokes one
(raising it ends every session the user has). The CSRF token of a session is random and travels inside the signed
cookie, so a page can put it in its forms and a request can be checked without a database read.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Connection, select
from starlette.requests import Request
from starlette.responses import Response

from stackwatch.server.storage.schema import users
from stackwatch.server.web.access import User

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "SESSION_MAX_AGE", "Session", "SessionCookies", "same_token"]

SESSION_COOKIE = "stackwatch_session"
CSRF_COOKIE = "stackwatch_csrf"  # before login: the double-submit token of the login form
SESSION_MAX_AGE = 14 * 24 * 3600
SALT = "stackwatch-session"


@dataclass(frozen=True, slots=True)
class Session:
    user_id: int
    version: int
    csrf: str


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class SessionCookies:
    def __init__(self, secret_key: str, *, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=SALT)
        self._secure = secure

    def issue(self, response: Response, user_id: int, version: int) -> None:
        payload = {"u": user_id, "v": version, "c": secrets.token_urlsafe(32)}
        self._set(response, SESSION_COOKIE, self._serializer.dumps(payload), max_age=SESSION_MAX_AGE)

    def read(self, request: Request) -> Session | None:
        """The session of a cookie signed by us and not older than ``SESSION_MAX_AGE``; else ``None``."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            payload: Any = self._serializer.loads(raw, max_age=SESSION_MAX_AGE)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(payload, dict):
            return None
        user_id, version, csrf = payload.get("u"), payload.get("v"), payload.get("c")
        if not isinstance(user_id, int) or not isinstance(version, int) or not isinstance(csrf, str):
            return None
        return Session(user_id, version, csrf)

    def clear(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", secure=self._secure, httponly=True, samesite="lax")

    def login_token(self, request: Request) -> str | None:
        return request.cookies.get(CSRF_COOKIE) or None

    def set_login_token(self, response: Response, token: str) -> None:
        self._set(response, CSRF_COOKIE, token, max_age=None)

    def _set(self, response: Response, name: str, value: str, *, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self._secure, httponly=True, samesite="lax")


def session_user(connection: Connection, session: Session | None) -> User | None:
    """The user of a session that has not been revoked (same ``session_version``) and whose account still exists."""
    if session is None:
        return None
    row = connection.execute(
        select(users.c.id, users.c.email, users.c.is_admin, users.c.session_version).where(
            users.c.id == session.user_id
        )
    ).first()
    if row is None or row.session_version != session.version:
        return None
    return User(int(row.id), row.email, bool(row.is_admin))
