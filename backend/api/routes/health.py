"""Liveness, readiness and Prometheus metrics (outside /api/v1, unauthenticated)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from backend.api.deps import CoreDep

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 2.0


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
    """Per dependency ("database", "bus"): "ok" or why it cannot be reached."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process serves requests; says nothing about its dependencies."""
    return {"status": "ok"}


async def _check(name: str, probe: asyncio.Future[None] | asyncio.Task[None]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as error:  # noqa: BLE001 - any failure means "not ready", reported by name
        return name, f"unreachable: {type(error).__name__}"
    return name, "ok"


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database or Redis is unreachable."}},
)
async def readyz(core: CoreDep) -> JSONResponse:
    """503 while the database or Redis cannot be reached; 200 again once they are back."""
    checks = dict(
        await asyncio.gather(
            _check("database", asyncio.ensure_future(core.db.ping())),
            _check("bus", asyncio.ensure_future(core.ctx.bus.ping())),
        )
    )
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
