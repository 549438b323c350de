"""One error body for every failure: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging
import math
from typing import Any

import psycopg
import redis.exceptions
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.schemas import ErrorBody
from backend.domain.errors import QuarterdeckError, RateLimited, Unauthenticated

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


_DESCRIPTIONS = {
    400: "The request is malformed.",
    401: "Not signed in, or the access token or API key is not valid "
    "(expired, revoked, tampered, or its user is disabled).",
    403: "Signed in, but without the permission this needs.",
    404: "There is no such resource.",
    409: "The change conflicts with the current state (a stale version, a taken name, ...).",
    413: "The request body is over the size limit.",
    422: "The request is not valid; `details` names the offending fields.",
    429: "Too many requests or sign-in attempts; try again after `Retry-After` seconds.",
    503: "A dependency (database, Redis) cannot be reached right now.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The authentication scheme to use: `Bearer`.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer"},
        }
    },
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error responses an operation can give, in the one shape.

    503 is always declared: every operation reaches the database.
    """
    declared: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 503}):
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        declared[status] = entry
    return declared


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _domain(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuarterdeckError)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    status = exc.http_status
    if status >= 500 and exc.code != "unavailable":
        log.error("internal error: %s", exc.message)
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _clean(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the offending input echoed back (it may be a password)."""
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in errors
    ]


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean(exc.errors())
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"] if part != "body")
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return error_response(422, "invalid", message, {"errors": errors})


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    return error_response(
        exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None
    )


_UNREACHABLE: tuple[tuple[type[Exception], str], ...] = (
    (sqlalchemy.exc.OperationalError, "database"),
    (sqlalchemy.exc.InterfaceError, "database"),
    (sqlalchemy.exc.TimeoutError, "database"),
    (psycopg.OperationalError, "database"),
    (psycopg.InterfaceError, "database"),
    (redis.exceptions.ConnectionError, "Redis"),
    (redis.exceptions.TimeoutError, "Redis"),
)
"""Driver errors that mean "a dependency is down or overloaded", not "a bug".

OperationalError covers refused and dropped connections (and a cancelled
statement); the pool's TimeoutError means no connection came free in time.
psycopg's own classes reach us from the COPY path, which bypasses SQLAlchemy.
"""


def _unreachable(exc: Exception) -> str | None:
    """Which dependency `exc` says is unreachable, or None for a genuine error."""
    for cls, name in _UNREACHABLE:
        if isinstance(exc, cls):
            return name
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return "database"
    return None


async def _dependency(request: Request, exc: Exception) -> JSONResponse:
    """503 `unavailable` while the database or Redis is down, so clients retry.

    The engine's pre-ping and redis-py's reconnect make the next request after
    the dependency returns succeed on their own; no restart is needed.
    """
    name = _unreachable(exc)
    if name is None:
        return await _unexpected(request, exc)
    log.warning("%s unreachable: %s: %s", name, type(exc).__name__, exc)
    return error_response(
        503,
        "unavailable",
        f"the {name} cannot be reached right now; try again shortly",
        {"dependency": name.lower()},
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal", "an unexpected error occurred; it was logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(QuarterdeckError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    # DBAPIError too, for `connection_invalidated`; the rest of it goes on to _unexpected.
    dependency_errors: list[type[Exception]] = [sqlalchemy.exc.DBAPIError]
    dependency_errors += (cls for cls, _ in _UNREACHABLE)
    for cls in dependency_errors:
        app.add_exception_handler(cls, _dependency)
    app.add_exception_handler(Exception, _unexpected)
