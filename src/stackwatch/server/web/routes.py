"""Dashboard pages: login, logout and the projects overview."""

from __future__ import annotations

import secrets
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from sqlalchemy import Connection, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stackwatch.server.storage import accounts, throttle
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import users
from stackwatch.server.web.access import User, visible_projects
from stackwatch.server.web.context import WebRoute, form, web
from stackwatch.server.web.overview import summarize
from stackwatch.server.web.sessions import session_user

__all__ = ["build_web_router", "client_address", "current_user", "login_redirect", "safe_next", "throttled_message"]

WRONG_CREDENTIALS = "The email or the password is wrong."


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only (``//host`` and ``/\\host`` lead elsewhere in browsers)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.isprintable():
        return "/"
    return target


def client_address(request: Request) -> str:
    """The client's address: the peer's, or what a proxy in ``STACKWATCH_TRUSTED_PROXIES`` said it is (uvicorn
    reads the forwarded headers of those peers only; nothing here reads them)."""
    return request.client.host if request.client else "unknown"


def throttled_message(wait: int) -> str:
    minutes = -(-wait // 60)
    return (
        f"Too many failed attempts from your address. Try again in {minutes} minute{'s' if minutes != 1 else ''}; "
        "other addresses are not affected."
    )


def current_user(request: Request, connection: Connection) -> User | None:
    return session_user(connection, web(request).cookies.read(request))


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def _login_page(
    request: Request, *, next_url: str, email: str = "", error: str = "", status_code: int = 200
) -> Response:
    context = web(request)
    # The token the browser has already (several open tabs keep working), or a new one.
    token = context.cookies.login_token(request) or secrets.token_urlsafe(32)
    response = context.page(
        "login.html",
        {"next": next_url, "email": email, "error": error, "csrf_token": token},
        status_code=status_code,
    )
    context.cookies.set_login_token(response, token)
    return response


def _throttled(request: Request, next_url: str, email: str, wait: int) -> Response:
    response = _login_page(request, next_url=next_url, email=email, error=throttled_message(wait), status_code=429)
    response.headers["Retry-After"] = str(wait)
    return response


def _session_version(connection: Connection, user_id: int | None) -> int:
    if user_id is None:
        return 0
    return int(connection.execute(select(users.c.session_version).where(users.c.id == user_id)).scalar_one())


def build_web_router() -> APIRouter:
    router = APIRouter(route_class=WebRoute, include_in_schema=False)

    @router.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:
        with web(request).engine.connect() as connection:
            if current_user(request, connection) is not None:
                return RedirectResponse(safe_next(next), status_code=303)
        return _login_page(request, next_url=safe_next(next))

    @router.post("/login")
    def login(request: Request) -> Response:
        fields = form(request)
        email, password = fields.get("email", "").strip().lower(), fields.get("password", "")
        next_url = safe_next(fields.get("next"))
        counters, context = throttle.login_counters(client_address(request), email), web(request)
        # The attempt is counted before the password is checked, in a short write transaction of its own: concurrent
        # attempts are counted one by one, and the Argon2 work (below, on a read connection) holds no lock — the
        # digest waits on SQLite's write lock.
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            wait = throttle.reserve(connection, counters, now())
        if wait is not None:
            return _throttled(request, next_url, email, wait)
        with context.engine.connect() as connection:
            user_id = accounts.authenticate(connection, email, password)
            version = _session_version(connection, user_id)
        if user_id is None:
            return _login_page(request, next_url=next_url, email=email, error=WRONG_CREDENTIALS, status_code=401)
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            throttle.release(connection, counters)  # not a failure after all
        response = RedirectResponse(next_url, status_code=303)
        context.cookies.issue(response, user_id, version)
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        context = web(request)
        session = context.cookies.read(request)
        if session is not None and form(request).get("everywhere"):
            with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
                if session_user(connection, session) is not None:
                    accounts.end_sessions(connection, session.user_id)
        response = RedirectResponse("/login", status_code=303)
        context.cookies.clear(response)
        return response

    @router.get("/")
    def projects_overview(request: Request) -> Response:
        context = web(request)
        with context.engine.connect() as connection:
            user = current_user(request, connection)
            if user is None:
                return login_redirect(request)
            summaries = summarize(connection, visible_projects(connection, user), now())
        session = context.cookies.read(request)
        csrf = session.csrf if session else ""
        return context.page("projects.html", {"user": user, "summaries": summaries, "csrf_token": csrf})

    return router
