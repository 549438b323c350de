"""What goes wrong on the way to a server, in the console's error vocabulary.

The server answers every failure with `{"error": {"code", "message",
"details"}}`; this turns it back into the class the service raised, so a
panel's `except Conflict` works in both modes. Failures below HTTP (refused,
timed out, an untrusted certificate) become `Unreachable` and
`CertificateRejected`, which exist only on this side.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx

from backend.domain.errors import (
    ERRORS_BY_CODE,
    InvalidInput,
    QuarterdeckError,
    RateLimited,
    Unavailable,
)
from console.client.errors import CertificateRejected, Unreachable

_BY_STATUS: dict[int, type[QuarterdeckError]] = {
    400: InvalidInput,
    405: InvalidInput,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}
"""For codes this console does not know (a newer server, a proxy's own page)."""


def ssl_context(*, verify: bool = True, ca_file: str | Path | None = None) -> ssl.SSLContext:
    """One context for HTTP and the WebSocket: the system's CAs, or a private CA file.

    `verify=False` is for a development server with a self-signed certificate,
    never the default.
    """
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)


def _retry_after(response: httpx.Response, details: dict[str, Any]) -> float:
    value = details.get("retry_after", response.headers.get("retry-after", 1))
    try:
        return float(value)
    except (TypeError, ValueError):
        return 1.0


def error_from_response(response: httpx.Response) -> QuarterdeckError:
    """The exception the server's error body describes (a 4xx or 5xx response)."""
    try:
        body = response.json()
        error = body["error"]
        code = str(error["code"])
        message = str(error["message"])
        details = error.get("details") or {}
        if not isinstance(details, dict):
            details = {"details": details}
    except (ValueError, KeyError, TypeError):
        code, message, details = "", f"the server answered {response.status_code}", {}
    cls = ERRORS_BY_CODE.get(code) or _BY_STATUS.get(response.status_code, QuarterdeckError)
    if cls is RateLimited or response.status_code == 429:
        return RateLimited(message, retry_after=_retry_after(response, details), details=details)
    if cls is QuarterdeckError and code:
        details = {**details, "code": code}
    return cls(message, details=details)


def _certificate_problem(error: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        current = current.__cause__ or current.__context__
    return None


def unreachable(error: BaseException, where: str) -> Unreachable:
    """`CertificateRejected` when TLS verification failed, else `Unreachable`."""
    problem = _certificate_problem(error)
    if problem is not None:
        reason = problem.verify_message or str(problem)
        return CertificateRejected(
            f"the certificate of {where} is not trusted: {reason}",
            details={"reason": reason},
        )
    kind = "timed out" if isinstance(error, (httpx.TimeoutException, TimeoutError)) else None
    reason = kind or str(error) or type(error).__name__
    return Unreachable(f"cannot reach {where}: {reason}", details={"reason": reason})
