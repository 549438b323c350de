"""Outages: Redis and PostgreSQL stop and return while the server keeps running.

The server runs over a private PostgreSQL cluster and a private Redis (see
`tests.private_services`), never the machine's shared ones. While one is
down, /readyz answers 503 naming it and the API calls that need it answer
503 `unavailable` within a bounded time (never a 500, never a hang); once it
is back, both recover by themselves: the engine's pre-ping replaces broken
pooled connections and redis-py reconnects on the next command.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import closing
from typing import TYPE_CHECKING

import httpx
import pytest

from backend.config import Settings
from backend.core import Core
from tests.api.conftest import sign_in
from tests.api.server import RunningServer, running_server
from tests.conftest import PASSWORD, TEST_SECRET

if TYPE_CHECKING:
    # Only for annotations: importing it for real before pytest registers it
    # as a plugin would stop pytest from rewriting its asserts.
    from tests.private_services import PrivatePostgres, PrivateRedis

pytest_plugins = ["tests.private_services"]

OUTAGE_ANSWER = 6.0
"""Seconds a request may take to fail while a dependency is down (/readyz: 2 s)."""
HUNG_ANSWER = 12.0
"""Seconds a request may wait on a Redis that never answers (its socket timeout)."""
RECOVERY = 20.0
"""Seconds the server may take to notice a dependency is back."""


def _seed_admin(settings: Settings) -> None:
    async def run() -> None:
        async with Core.open(settings) as core:
            await core.users.create_first_admin(username="ada", password=PASSWORD)

    asyncio.run(run())


@pytest.fixture
def server(
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("faults"),
        secret_key=TEST_SECRET,
        database_url=private_postgres.url,
        redis_url=private_redis.url,
        auto_migrate=False,
        run_jobs=False,
        collect_local=False,
    )
    _seed_admin(settings)
    with running_server(settings) as running:
        yield running


def _get(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - start


def _login(client: httpx.Client) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = client.post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
    return response, time.monotonic() - start


def _assert_unavailable(response: httpx.Response, elapsed: float, dependency: str) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["details"]["dependency"] == dependency
    assert elapsed < OUTAGE_ANSWER


def _assert_not_ready(client: httpx.Client, down: str, up: str) -> None:
    response, elapsed = _get(client, "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"][down].startswith("unreachable")
    assert body["checks"][up] == "ok"
    assert elapsed < 4.0


def _wait_ready(client: httpx.Client) -> None:
    deadline = time.monotonic() + RECOVERY
    while True:
        response = client.get("/readyz")
        if response.status_code == 200:
            assert response.json()["checks"] == {"database": "ok", "bus": "ok"}
            return
        assert time.monotonic() < deadline, f"not ready again: {response.text}"
        time.sleep(0.2)


def test_redis_outage_answers_503_and_recovers(
    server: RunningServer, private_redis: PrivateRedis
) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=15) as anonymous,
        closing(sign_in(server.url, "ada")) as admin,
    ):
        _wait_ready(anonymous)
        private_redis.stop()

        _assert_not_ready(anonymous, down="bus", up="database")
        # Sign-in needs Redis (its rate limit and lockout counters live there).
        _assert_unavailable(*_login(anonymous), dependency="redis")
        # A read that needs only the database: served, or 503 where the
        # per-principal request budget (kept in Redis) meters it; never a 500.
        response, elapsed = _get(admin, "/api/v1/me")
        assert response.status_code in {200, 503}, response.text
        assert elapsed < OUTAGE_ANSWER
        assert anonymous.get("/healthz").status_code == 200

        private_redis.start()
        _wait_ready(anonymous)
        response, _ = _login(anonymous)
        assert response.status_code == 200, response.text
        assert admin.get("/api/v1/me").json()["username"] == "ada"


def test_a_hung_redis_is_bounded_by_timeouts(
    server: RunningServer, private_redis: PrivateRedis
) -> None:
    """A Redis that accepts but never answers costs a bounded wait, then 503."""
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        _wait_ready(anonymous)
        private_redis.pause()
        try:
            _assert_not_ready(anonymous, down="bus", up="database")
            response, elapsed = _login(anonymous)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["details"]["dependency"] == "redis"
            assert elapsed < HUNG_ANSWER
        finally:
            private_redis.resume()
        _wait_ready(anonymous)
        response, _ = _login(anonymous)
        assert response.status_code == 200, response.text


def test_postgres_outage_answers_503_and_recovers(
    server: RunningServer, private_postgres: PrivatePostgres
) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=15) as anonymous,
        closing(sign_in(server.url, "ada")) as admin,
    ):
        _wait_ready(anonymous)
        # Fill the pool with connections the restart will break.
        assert admin.get("/api/v1/users").status_code == 200
        private_postgres.stop()

        _assert_not_ready(anonymous, down="database", up="bus")
        _assert_unavailable(*_get(admin, "/api/v1/users"), dependency="database")
        _assert_unavailable(*_login(anonymous), dependency="database")
        assert anonymous.get("/healthz").status_code == 200

        private_postgres.start()
        _wait_ready(anonymous)
        users = admin.get("/api/v1/users")
        assert users.status_code == 200, users.text
        assert [user["username"] for user in users.json()] == ["ada"]
        response, _ = _login(anonymous)
        assert response.status_code == 200, response.text


def test_postgres_crash_is_survived_too(
    server: RunningServer, private_postgres: PrivatePostgres
) -> None:
    """An immediate shutdown (no goodbye to clients) is recovered from like a clean one."""
    with (
        httpx.Client(base_url=server.url, timeout=15) as anonymous,
        closing(sign_in(server.url, "ada")) as admin,
    ):
        assert admin.get("/api/v1/users").status_code == 200
        private_postgres.stop("immediate")
        _assert_unavailable(*_get(admin, "/api/v1/users"), dependency="database")
        private_postgres.start()
        _wait_ready(anonymous)
        assert admin.get("/api/v1/users").status_code == 200
