"""The dashboard: server-rendered pages behind a login (see docs/dashboard.md)."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.staticfiles import StaticFiles

from stackwatch.server.config import Settings
from stackwatch.server.web.context import STATIC_DIR, Web
from stackwatch.server.web.issues import build_issues_router
from stackwatch.server.web.routes import build_web_router

__all__ = ["mount"]


def mount(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """The dashboard's pages, and its static files at ``/static``."""
    app.state.web = Web.open(engine, settings)
    app.include_router(build_web_router())
    app.include_router(build_issues_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
