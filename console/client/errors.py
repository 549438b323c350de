"""The errors a panel catches, the same in both modes.

The backend's vocabulary (`backend.domain.errors`) is re-exported as is:
`LocalClient` lets the services' exceptions through and `RemoteClient`
rebuilds them from the JSON error body, so `except Conflict` works whichever
backend answered. Two errors exist only on the way to a remote server.
"""

from __future__ import annotations

from backend.domain.errors import (
    ERRORS_BY_CODE,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    QuarterdeckError,
    RateLimited,
    Unauthenticated,
    Unavailable,
)


class Unreachable(Unavailable):
    """The server could not be reached at all (refused, timed out, no route)."""

    code = "unreachable"


class CertificateRejected(Unreachable):
    """TLS verification failed: the server's certificate is not trusted."""

    code = "bad_certificate"


__all__ = [
    "ERRORS_BY_CODE",
    "CertificateRejected",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "QuarterdeckError",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
    "Unreachable",
]
