"""Metric ingest, series discovery and range queries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from pydantic import Field

from backend.api import errors
from backend.api.deps import CoreDep, PrincipalDep
from backend.api.requests import JsonRoute
from backend.api.schemas import MAX_ID, MetricsBody
from backend.domain.monitoring import MAX_TS, IngestResult, SeriesData, SeriesView

router = APIRouter(tags=["metrics"], route_class=JsonRoute)
"""Ingest bodies are large: they are decoded by the faster parser (backend.api.requests)."""


@router.post("/metrics", responses=errors.responses(400, 401, 403, 413, 422, 429))
async def ingest(
    points: Annotated[MetricsBody, Body()], core: CoreDep, principal: PrincipalDep, request: Request
) -> IngestResult:
    result = await core.metrics.ingest(principal, points)
    request.app.state.metrics.points.inc(result.accepted)
    return result


@router.get("/metrics/series", responses=errors.responses(401, 403, 422, 429))
async def list_series(
    core: CoreDep,
    principal: PrincipalDep,
    host: Annotated[str | None, Query(max_length=255)] = None,
    metric: Annotated[str | None, Query(max_length=200)] = None,
) -> list[SeriesView]:
    return await core.metrics.series(principal, host=host, metric=metric)


@router.get("/metrics/query", responses=errors.responses(401, 403, 404, 422, 429))
async def query(
    core: CoreDep,
    principal: PrincipalDep,
    series: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_ID)]], Query(min_length=1, max_length=64)
    ],
    start: Annotated[float, Query(ge=0, le=MAX_TS, allow_inf_nan=False)],
    end: Annotated[float, Query(ge=0, le=MAX_TS, allow_inf_nan=False)],
    max_points: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[SeriesData]:
    return await core.metrics.query(principal, series, start, end, max_points)
