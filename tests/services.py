"""Where the test suite finds PostgreSQL and Redis, and what to do without them.

Tests that need a service call `postgres_url()` / `redis_url()`. When the
service is unreachable they skip, unless QUARTERDECK_REQUIRE_SERVICES=1 (as
in CI), where they fail: a green CI must mean the services were exercised.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def services_required() -> bool:
    return os.environ.get("QUARTERDECK_REQUIRE_SERVICES", "") not in ("", "0", "false")


@functools.cache
def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def _need(url: str, what: str) -> str:
    if not _reachable(url):
        message = f"{what} is not reachable at {url}"
        if services_required():
            pytest.fail(message + " and QUARTERDECK_REQUIRE_SERVICES=1")
        pytest.skip(message)
    return url


def postgres_admin_url() -> str:
    """A PostgreSQL URL with rights to create the per-run test database."""
    return _need(os.environ.get("QUARTERDECK_TEST_POSTGRES", DEFAULT_POSTGRES), "PostgreSQL")


def redis_url() -> str:
    return _need(os.environ.get("QUARTERDECK_TEST_REDIS", DEFAULT_REDIS), "Redis")
