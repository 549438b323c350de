"""One error vocabulary for every front door.

Services raise only these. The HTTP layer maps `code` to a status and the
JSON body `{"error": {"code", "message", "details"}}`; the console's remote
client maps the body back to the same class, so panels catch one set of
errors whether the backend is embedded or remote.
"""

from __future__ import annotations

from typing import Any, ClassVar


class QuarterdeckError(Exception):
    """Base of every error a user can be shown."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(QuarterdeckError):
    """The request itself is wrong; details name the offending fields."""

    code = "invalid"
    http_status = 422


class NotFound(QuarterdeckError):
    code = "not_found"
    http_status = 404


class Conflict(QuarterdeckError):
    """The write was based on stale state or collides with existing data."""

    code = "conflict"
    http_status = 409


class Unauthenticated(QuarterdeckError):
    """No valid identity: wrong password, expired or revoked token."""

    code = "unauthenticated"
    http_status = 401


class Forbidden(QuarterdeckError):
    """The identity is known but lacks the permission."""

    code = "forbidden"
    http_status = 403


class RateLimited(QuarterdeckError):
    code = "rate_limited"
    http_status = 429

    def __init__(
        self, message: str, *, retry_after: float, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details={**(details or {}), "retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(QuarterdeckError):
    """A dependency (database, Redis) cannot be reached right now."""

    code = "unavailable"
    http_status = 503


ERRORS_BY_CODE: dict[str, type[QuarterdeckError]] = {
    cls.code: cls
    for cls in (
        QuarterdeckError,
        InvalidInput,
        NotFound,
        Conflict,
        Unauthenticated,
        Forbidden,
        RateLimited,
        Unavailable,
    )
}
