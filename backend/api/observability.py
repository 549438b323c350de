"""Correlation ids, JSON logs and Prometheus metrics for the server.

The registry is created per app (no import-time singletons), so tests can
run several servers in one process without their counters mixing.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


@dataclass
class ServerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "quarterdeck_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "quarterdeck_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.websockets = Gauge(
            "quarterdeck_websockets_open", "Open event-stream WebSockets", registry=self.registry
        )
        self.points = Counter(
            "quarterdeck_points_ingested", "Metric points accepted", registry=self.registry
        )
        self.events_sent = Counter(
            "quarterdeck_ws_events_sent", "Events sent to WebSocket clients", registry=self.registry
        )
        self.ws_dropped = Counter(
            "quarterdeck_ws_slow_clients_dropped",
            "WebSocket clients disconnected for falling behind",
            registry=self.registry,
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request's correlation id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Our own access log replaces uvicorn's (it carries route, duration and request id).
    logging.getLogger("uvicorn.access").disabled = True


def monotonic_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
