"""The dashboard: server-rendered pages behind a login (see docs/dashboard.md)."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.staticfiles import StaticFiles

from stackwatch.server.config import Settings
from stackwatch.server.web.account import build_account_router
from stackwatch.server.web.connect import build_connect_router
from stackwatch.server.web.context import STATIC_DIR, Web
from stackwatch.server.web.event_view import json_text
from stackwatch.server.web.impact import build_impact_router
from stackwatch.server.web.issue_page import build_issue_page_router
from stackwatch.server.web.issues import build_issues_router
from stackwatch.server.web.live import Live
from stackwatch.server.web.routes import build_web_router
from stackwatch.server.web.settings import build_settings_router
from stackwatch.server.web.trends import build_trends_router

__all__ = ["mount"]


def mount(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """The dashboard's pages, and its static files at ``/static``."""
    app.state.web = Web.open(engine, settings)
    app.state.live = Live(engine)
    app.state.web.templates.filters["json_text"] = json_text  # nested event values as plain (escaped) text
    app.include_router(build_web_router())
    app.include_router(build_issues_router())
    app.include_router(build_issue_page_router())
    app.include_router(build_settings_router())
    app.include_router(build_account_router())
    app.include_router(build_impact_router())
    app.include_router(build_trends_router())
    app.include_router(build_connect_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
