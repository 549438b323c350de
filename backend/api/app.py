"""The FastAPI application factory.

`create_app(settings)` opens its own `Core` in the lifespan; tests and the
embedded benchmarks may pass an open core instead. Nothing is built at import.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from backend.api import errors
from backend.api.middleware import BodyLimit, RequestContext
from backend.api.observability import ServerMetrics
from backend.api.routes import (
    api_keys,
    audit,
    auth,
    events,
    health,
    hosts,
    metrics,
    settings,
    users,
)
from backend.config import Settings
from backend.core import Core

API_PREFIX = "/api/v1"
MAX_BODY = 8 * 1024 * 1024
"""Large enough for a 50,000-point metrics batch, small enough to bound memory."""


def create_app(config: Settings, *, core: Core | None = None) -> FastAPI:
    server_metrics = ServerMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if core is not None:
            app.state.core = core
            yield
            return
        async with Core.open(config) as opened:
            app.state.core = opened
            yield

    app = FastAPI(
        title="Quarterdeck",
        version="1",
        summary="Operations console backend: hosts, metrics, users, settings, audit.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.metrics = server_metrics
    errors.install(app)
    # Starlette tries routes in order, and each candidate costs a few microseconds
    # (FastAPI matches every route of an included router in turn): the paths
    # polled all day come first, agents' ingest, dashboards' host list and /me.
    # No two routers share a path, so the order changes nothing else.
    for module in (metrics, hosts, auth, users, api_keys, settings, audit, events):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(RequestContext, metrics=server_metrics)
    return app


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` worker processes: settings from QUARTERDECK_*."""
    from backend.api.server import tune_gc  # noqa: PLC0415 - server imports this module

    app = create_app(Settings())
    tune_gc()
    return app
