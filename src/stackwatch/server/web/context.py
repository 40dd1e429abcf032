"""What every dashboard request needs: the engine, the session cookies and the templates, and the response rules.

``WebRoute`` is the route class of every dashboard route. It adds the security headers to every answer and refuses
a state-changing request (POST, PUT, PATCH, DELETE) whose form does not carry the right ``csrf_token``, before the
route's code runs — a route cannot forget the check. The REST API and ingest use routes of their own.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from stackwatch.server.config import Settings
from stackwatch.server.web.charts import sparkline
from stackwatch.server.web.sessions import SessionCookies, same_token

__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "Web", "WebRoute", "clean", "epoch", "form", "form_values", "web"]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PRE_SESSION_PATHS = frozenset({"/login"})  # forms posted before there is a session: double-submit cookie
MAX_FORM_BYTES = 64 * 1024

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def clean(value: str | None) -> str:
    """A form or query value, trimmed; without NUL characters, which PostgreSQL refuses even as parameters."""
    return (value or "").replace("\x00", "").strip()


def epoch(stamp: str | None) -> float | None:
    """An ISO time as the REST API's queries give it, as epoch seconds for the ``when`` filter."""
    return None if stamp is None else dt.datetime.fromisoformat(stamp).timestamp()


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _size(count: int) -> str:
    """Bytes for people: ``512 bytes``, ``1.5 KB``, ``20 MB`` (binary units, as the settings read them)."""
    value, unit = float(count), "bytes"
    for larger in ("KB", "MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{count} bytes" if unit == "bytes" else f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _bucket(start: int, step: int) -> str:
    """A chart bucket's label: the hour (``14:00``) or the day (``2026-11-28``), in UTC."""
    moment = dt.datetime.fromtimestamp(start, dt.UTC)
    return moment.strftime("%H:%M" if step < 86400 else "%Y-%m-%d")


@dataclass(slots=True)
class Web:
    engine: Engine
    settings: Settings
    cookies: SessionCookies
    templates: jinja2.Environment

    @classmethod
    def open(cls, engine: Engine, settings: Settings) -> Web:
        # Autoescape everywhere: event data reaches the page only through it (never ``|safe`` on data).
        templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )
        templates.filters["when"] = _when
        templates.filters["bucket"] = _bucket
        templates.filters["size"] = _size
        templates.filters["sparkline"] = sparkline
        cookies = SessionCookies(settings.secret_key, secure=settings.base_url.startswith("https://"))
        return cls(engine, settings, cookies, templates)

    def page(self, name: str, values: Mapping[str, Any], *, status_code: int = 200) -> HTMLResponse:
        return HTMLResponse(self.templates.get_template(name).render(**values), status_code=status_code)

    def error(self, status_code: int, title: str, message: str) -> HTMLResponse:
        return self.page("error.html", {"title": title, "message": message}, status_code=status_code)


def web(request: Request) -> Web:
    found: Web = request.app.state.web
    return found


def form(request: Request) -> dict[str, str]:
    """The posted form, as read (and checked) by ``WebRoute``; the first value of each field."""
    fields: dict[str, str] = getattr(request.state, "form", {})
    return fields


def form_values(request: Request, key: str) -> list[str]:
    """Every value of a field the form repeats (checkboxes of one name), in the order sent."""
    pairs: list[tuple[str, str]] = getattr(request.state, "form_pairs", [])
    return [value for name, value in pairs if name == key]


async def _read_form(request: Request) -> list[tuple[str, str]] | None:
    """An ``application/x-www-form-urlencoded`` body (what a plain HTML form sends); ``None`` when too large."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return []
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


async def _refusal(request: Request) -> Response | None:
    context = web(request)
    pairs = await _read_form(request)
    if pairs is None:
        return context.error(413, "Form too large", "The form sent is larger than a dashboard form can be.")
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    request.state.form, request.state.form_pairs = fields, pairs
    if request.url.path in PRE_SESSION_PATHS:
        expected = context.cookies.login_token(request)
    else:
        session = context.cookies.read(request)
        expected = session.csrf if session else None
    if not same_token(fields.get("csrf_token"), expected):
        return context.error(
            403,
            "Request refused",
            "The form was not accepted: its security token is missing or does not match your session "
            "(cookies off, or the page is stale). Reload the page and try again.",
        )
    return None


class WebRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            refusal = await _refusal(request) if request.method in STATE_CHANGING else None
            response = refusal or await handler(request)
            response.headers.update(SECURITY_HEADERS)
            # The server's own time for the answer (browser devtools show it; bench/dashboard_pages.py reads it).
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
            return response

        return handle
