"""Metric ingest, series discovery and range queries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from backend.api.deps import CoreDep, PrincipalDep
from backend.api.schemas import MetricsIn
from backend.domain.monitoring import IngestResult, SeriesData, SeriesView

router = APIRouter(tags=["metrics"])


@router.post("/metrics")
async def ingest(
    body: MetricsIn, core: CoreDep, principal: PrincipalDep, request: Request
) -> IngestResult:
    result = await core.metrics.ingest(principal, body.points)
    request.app.state.metrics.points.inc(result.accepted)
    return result


@router.get("/metrics/series")
async def list_series(
    core: CoreDep,
    principal: PrincipalDep,
    host: Annotated[str | None, Query(max_length=255)] = None,
    metric: Annotated[str | None, Query(max_length=200)] = None,
) -> list[SeriesView]:
    return await core.metrics.series(principal, host=host, metric=metric)


@router.get("/metrics/query")
async def query(
    core: CoreDep,
    principal: PrincipalDep,
    series: Annotated[list[int], Query(min_length=1, max_length=64)],
    start: float,
    end: float,
    max_points: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[SeriesData]:
    return await core.metrics.query(principal, series, start, end, max_points)
