"""The user's own pages: ``/account/tokens`` (REST API tokens) and ``/account/password`` (change the password).

An API token opens the REST API on every project (an ``admin`` token for every change the API allows, a ``read``
token for reading only), so only administrators create them; each user lists and revokes their own only.

Changing the password asks for the current one, which counts as a login attempt for the throttle (a stolen session
must not become a way to guess the password at leisure). The new password ends every other session of the user;
the session that changed it goes on with a new cookie.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stackwatch.server.storage import accounts, throttle
from stackwatch.server.storage.db import now
from stackwatch.server.storage.schema import TOKEN_SCOPES
from stackwatch.server.web.access import User
from stackwatch.server.web.context import WebRoute, clean, form, web
from stackwatch.server.web.routes import client_address, current_user, login_redirect, throttled_message

__all__ = ["build_account_router"]

TOKENS = "/account/tokens"
PASSWORD = "/account/password"
MAX_NAME = 200
MAX_ID_DIGITS = 10


def _csrf(request: Request) -> str:
    session = web(request).cookies.read(request)
    return session.csrf if session else ""


def _signed_in(request: Request) -> User | None:
    with web(request).engine.connect() as connection:
        return current_user(request, connection)


# ---- API tokens --------------------------------------------------------------------------------------------


def _tokens_page(
    request: Request, user: User, *, new_token: str = "", error: str = "", status_code: int = 200
) -> Response:
    context = web(request)
    with context.engine.connect() as connection:
        tokens = accounts.list_tokens(connection, user_id=user.id)
    values = {
        "user": user,
        "csrf_token": _csrf(request),
        "tokens": tokens,
        "new_token": new_token,
        "error": error,
        "can_create": user.is_admin,
    }
    return context.page("tokens.html", values, status_code=status_code)


def _token_form(request: Request) -> tuple[str, str]:
    """The new token's name and scope; ``ValueError`` with the page's message when they will not do."""
    fields = form(request)
    name, scope = clean(fields.get("name")), clean(fields.get("scope")) or "admin"
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"The token's name must be 1 to {MAX_NAME} characters long.")
    if scope not in TOKEN_SCOPES:
        raise ValueError("Choose what the token may do: everything (admin) or read only.")
    return name, scope


def _add_token_routes(router: APIRouter) -> None:
    @router.get(TOKENS)
    def token_list(request: Request) -> Response:
        user = _signed_in(request)
        return login_redirect(request) if user is None else _tokens_page(request, user)

    @router.post(TOKENS)
    def token_create(request: Request) -> Response:
        context = web(request)
        try:
            (name, scope), problem = _token_form(request), ""
        except ValueError as error:
            (name, scope), problem = ("", ""), str(error)
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            user = current_user(request, connection)
            if user is None:
                return RedirectResponse(f"/login?next={TOKENS}", status_code=303)
            if not user.is_admin:
                return context.error(
                    403, "Not allowed", "Only administrators can create API tokens: a token opens every project."
                )
            token = "" if problem else accounts.create_token(connection, name, user.id, scope=scope)
        if problem:
            return _tokens_page(request, user, error=problem, status_code=400)
        # Shown in this answer only: only its hash is stored, and it never goes into a URL or a redirect.
        return _tokens_page(request, user, new_token=token)

    @router.post(TOKENS + "/{token_id}/revoke")
    def token_revoke(request: Request, token_id: str) -> Response:
        context = web(request)
        wanted = int(token_id) if token_id.isascii() and token_id.isdigit() and len(token_id) <= MAX_ID_DIGITS else 0
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            user = current_user(request, connection)
            if user is None:
                return RedirectResponse(f"/login?next={TOKENS}", status_code=303)
            try:
                accounts.revoke_token(connection, wanted, user_id=user.id)
            except accounts.AccountError:
                return context.error(404, "Not found", "There is no such API token among yours.")
        return RedirectResponse(TOKENS, status_code=303)


# ---- password ----------------------------------------------------------------------------------------------


def _password_page(
    request: Request, user: User, *, error: str = "", notice: str = "", status_code: int = 200
) -> Response:
    values = {
        "user": user,
        "csrf_token": _csrf(request),
        "error": error,
        "notice": notice,
        "min_length": accounts.MIN_PASSWORD_LENGTH,
    }
    return web(request).page("password.html", values, status_code=status_code)


def _new_password(request: Request) -> str:
    """The new password, typed twice alike and long enough; ``ValueError`` with the page's message if not."""
    fields = form(request)
    new, again = fields.get("new_password", ""), fields.get("new_password_again", "")
    if new != again:
        raise ValueError("The two new passwords are not the same.")
    try:
        accounts.check_password(new)
    except accounts.AccountError:
        raise ValueError(f"The new password needs at least {accounts.MIN_PASSWORD_LENGTH} characters.") from None
    return new


def _add_password_routes(router: APIRouter) -> None:
    @router.get(PASSWORD)
    def password_form(request: Request, changed: str = "") -> Response:
        user = _signed_in(request)
        if user is None:
            return login_redirect(request)
        notice = "Your password was changed. Your other sessions have ended." if changed else ""
        return _password_page(request, user, notice=notice)

    @router.post(PASSWORD)
    def password_change(request: Request) -> Response:
        context = web(request)
        user = _signed_in(request)
        if user is None:
            return RedirectResponse(f"/login?next={PASSWORD}", status_code=303)
        try:
            new = _new_password(request)
        except ValueError as error:
            return _password_page(request, user, error=str(error), status_code=400)
        counters = throttle.login_counters(client_address(request), user.email)
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            wait = throttle.reserve(connection, counters, now())
        if wait is not None:
            response = _password_page(request, user, error=throttled_message(wait), status_code=429)
            response.headers["Retry-After"] = str(wait)
            return response
        with context.engine.connect() as connection:  # Argon2 outside the write transaction, as at login
            matches = accounts.authenticate(connection, user.email, form(request).get("current_password", ""))
        if matches != user.id:
            return _password_page(request, user, error="The current password is wrong.", status_code=400)
        with context.engine.connect() as connection, connection.execution_options(sqlite_write=True).begin():
            throttle.release(connection, counters)
            version = accounts.set_password(connection, user.id, new)
        accounts.forget_admin_password(context.settings.data_dir, user.email)
        response = RedirectResponse(f"{PASSWORD}?changed=1", status_code=303)
        context.cookies.issue(response, user.id, version)  # this session goes on; every other one has ended
        return response


def build_account_router() -> APIRouter:
    router = APIRouter(route_class=WebRoute, include_in_schema=False)
    _add_token_routes(router)
    _add_password_routes(router)
    return router
