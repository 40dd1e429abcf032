"""The application factory: one ASGI app whose parts depend on the role, and the workers it starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from stackwatch import __version__
from stackwatch.server import web
from stackwatch.server.alerts.dispatcher import UNHEALTHY_AFTER
from stackwatch.server.api.routes import build_router
from stackwatch.server.config import Settings
from stackwatch.server.digest.process import DigestProcess
from stackwatch.server.digest.worker import DigestWorker
from stackwatch.server.ingest.auth import KeyCache
from stackwatch.server.ingest.routes import Ingest
from stackwatch.server.metrics import METRICS, alert_gauges, database_counters
from stackwatch.server.readiness import database_unavailable, readiness
from stackwatch.server.services import Services, open_services

__all__ = ["create_app"]


def create_app(settings: Settings, services: Services | None = None, *, run_worker: bool | None = None) -> FastAPI:
    """The app for ``settings.role``; ``run_worker=False`` leaves digesting to the caller (``Digester.drain``)."""
    services = services or open_services(settings)
    run_worker = settings.runs_worker if run_worker is None else run_worker
    worker: DigestWorker | DigestProcess | None = None
    if run_worker:
        # Beside ingest the digest gets a process of its own (see digest/process.py for the measured reason).
        separate = settings.digest_process and settings.role == "all"
        worker = DigestProcess(settings) if separate else DigestWorker(services.digester, services.inbox)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.runs_ingest:
            services.inbox.start_writer()
        if worker is not None:
            worker.start()
        if isinstance(worker, DigestWorker):  # in a digest child process the child runs the dispatcher
            services.dispatcher.start()
        try:
            yield
        finally:
            if settings.runs_web:
                _app.state.live.close()  # ends the dashboard's live streams
            services.inbox.stop_writer()  # answers every request that is still waiting for its commit
            if worker is not None:
                worker.stop()
            if isinstance(worker, DigestWorker):
                services.dispatcher.stop()

    app = FastAPI(
        title="Stackwatch",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.services = services
    # An unreachable, locked, read-only or full database is a 503 with the reason, not a 500 (see readiness.py).
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeoutError, database_unavailable)
    if settings.runs_ingest:
        for route in Ingest(settings, KeyCache(services.engine), services.inbox, disk=services.disk).routes():
            app.router.routes.append(route)
    if settings.runs_web:
        app.include_router(build_router(services.engine, settings))
        web.mount(app, services.engine, settings)
    _health_routes(app, services)
    return app


def _health_routes(app: FastAPI, services: Services) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        reasons, backlog = readiness(services)
        if reasons:
            return JSONResponse({"status": "unavailable", "reasons": reasons, "inbox_backlog": backlog}, 503)
        return JSONResponse({"status": "ok", "database": "ok", "inbox_backlog": backlog})

    @app.get("/metrics", include_in_schema=False)
    def metrics(_request: Request) -> Response:
        backlog = float(services.inbox.backlog())
        gauges = {
            "stackwatch_inbox_backlog": ("Envelopes accepted and not yet digested.", backlog),
            "stackwatch_disk_bytes": ("Bytes the store takes on disk (as last measured).", services.disk.current()),
        }
        if services.disk.limit_bytes > 0:
            help_text = "STACKWATCH_MAX_DISK_MB in bytes: ingest answers 429 at it."
            gauges["stackwatch_disk_limit_bytes"] = (help_text, services.disk.limit_bytes)
        with services.engine.connect() as connection:
            stored = database_counters(connection)
            gauges.update(alert_gauges(connection, UNHEALTHY_AFTER))
        live = getattr(app.state, "live", None)  # the dashboard's open event streams (web role only)
        if live is not None:
            help_text = "Dashboard live-update streams open in this process."
            gauges["stackwatch_live_streams"] = (help_text, live.open_streams)
        return PlainTextResponse(METRICS.render(gauges, stored), media_type="text/plain; version=0.0.4")
