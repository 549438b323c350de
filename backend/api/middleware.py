"""Pure ASGI middleware: correlation id, access log, metrics, body size limit.

Written against ASGI directly rather than `BaseHTTPMiddleware`, which buffers
responses and breaks WebSockets and streaming.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import error_response
from backend.api.observability import ServerMetrics, monotonic_ms, request_id_var

access_log = logging.getLogger("quarterdeck.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_MAX_SERIES = 1000
"""(route, method, status) combinations whose metric children are kept at hand;
past it (clients can send any method) they are looked up per request."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


class RequestContext:
    """Give every request an id (taken from X-Request-ID when sane), log it, count it."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        """The request counter and latency histogram children per label set:
        `labels()` hashes and locks on every call, this is one dict lookup."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_ID.match(incoming) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                self._record(scope, status, start)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, start: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        elapsed = time.perf_counter() - start
        counter, histogram = self._children(template, scope["method"], status)
        counter.inc()
        histogram.observe(elapsed)
        if not access_log.isEnabledFor(logging.INFO):
            return  # the entry below is built only to be logged
        client = scope.get("client")
        access_log.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status,
            extra={
                "fields": {
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "duration_ms": monotonic_ms(start),
                    "client": client[0] if client else None,
                }
            },
        )

    def _children(self, template: str, method: str, status: int) -> tuple[Counter, Histogram]:
        key = (template, method, status)
        found = self._series.get(key)
        if found is None:
            found = (
                self.metrics.requests.labels(template, method, str(status)),
                self.metrics.latency.labels(template),
            )
            if len(self._series) < _MAX_SERIES:
                self._series[key] = found
        return found


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, before reading them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "too_large", f"the request body is over the limit of {self.limit} bytes"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
