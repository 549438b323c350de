"""`quarterdeck serve`: uvicorn over the app, with the deployment's safety rules."""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from backend.api.app import create_app
from backend.api.observability import configure_json_logging
from backend.config import Settings

log = logging.getLogger(__name__)


GC_YOUNG_THRESHOLD = 50_000
"""Container allocations between collections of the youngest generation (CPython: 700)."""


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path of a server process.

    An ingest request allocates tens of thousands of short-lived dicts and
    lists (a 5,000-point batch, parsed and validated). With CPython's
    default threshold the collector ran every 700 of them, each time
    traversing the batch still in flight and promoting it towards the old
    generation, whose full collections also walked every object made at
    start-up: half the CPU of an ingest went there. Now start-up's objects
    are frozen out of collections (they live as long as the process), and a
    request's temporaries are freed by reference counting long before the
    youngest generation fills. Cycles are still collected, just in larger
    and rarer batches. Process-wide, hence only in `serve` (and its worker
    processes), never in the console's embedded backend or tests.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class ServeRefused(Exception):
    """A configuration the server will not run with; the message says how to fix it."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    log_level: str = "info"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(options: ServeOptions) -> None:
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ServeRefused("TLS needs both --tls-cert and --tls-key")
    if options.tls_cert is None and not is_loopback(options.host) and not options.insecure:
        raise ServeRefused(
            f"refusing to serve plain HTTP on {options.host}: give --tls-cert and --tls-key, "
            "or --insecure if a TLS-terminating proxy sits in front"
        )
    if options.workers < 1:
        raise ServeRefused("--workers must be at least 1")


def _tls_context(_config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def serve(settings: Settings, options: ServeOptions) -> None:
    check(options)
    configure_json_logging(getattr(logging, options.log_level.upper(), logging.INFO))
    common: dict[str, object] = {
        "host": options.host,
        "port": options.port,
        "log_config": None,
        "proxy_headers": False,
        "server_header": False,
        # A dead client is noticed within ~10 s; the stream's own heartbeat
        # lets clients notice a dead server.
        "ws_ping_interval": 5.0,
        "ws_ping_timeout": 5.0,
        # Compressing every event once per client costs more CPU than the
        # loopback or LAN bandwidth it saves.
        "ws_per_message_deflate": False,
    }
    if options.tls_cert is not None:
        common.update(
            ssl_certfile=str(options.tls_cert),
            ssl_keyfile=str(options.tls_key),
            ssl_context_factory=_tls_context,
        )
    scheme = "https" if options.tls_cert else "http"
    log.info("serving on %s://%s:%s", scheme, options.host, options.port)
    if options.workers == 1:
        app = create_app(settings)
        tune_gc()
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    # Worker processes rebuild the settings from the environment.
    for name, value in settings.model_dump(exclude_none=True).items():
        if name == "secret_key":
            os.environ["QUARTERDECK_SECRET_KEY"] = settings.resolve_secret_key().decode()
        elif name in ("database_url", "redis_url", "redis_prefix", "data_dir"):
            os.environ[f"QUARTERDECK_{name.upper()}"] = str(value)
    uvicorn.run(
        "backend.api.app:app_from_environment",
        factory=True,
        workers=options.workers,
        **common,  # type: ignore[arg-type]
    )
