"""Several server instances over one PostgreSQL and one Redis behave as one deployment.

Two real servers (A and B) share the database and the Redis prefix, as
`quarterdeck serve` processes behind a load balancer would: whatever one
accepts, the other knows; optimistic concurrency and lockouts hold across
them; and the periodic retention job does its work once per round however
many instances run it (a PostgreSQL advisory lock).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.sync.client import connect

from backend.core import Core
from backend.domain.monitoring import PointIn
from backend.domain.principal import Principal
from backend.services.metrics import RETENTION_LOCK
from backend.storage import metrics as metric_store
from backend.storage.models import metric_points, metric_rollups
from tests.api.conftest import sign_in
from tests.api.server import RunningServer, running_server
from tests.conftest import PASSWORD, Backend

# Instances only share state through PostgreSQL and Redis: the SQLite back end
# (one process, in-memory bus) is not a multi-instance deployment.
pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def _seed_admin(backend: Backend) -> None:
    async def run() -> None:
        async with Core.open(backend.settings) as core:
            await core.users.create_first_admin(username="ada", password=PASSWORD)

    asyncio.run(run())


@pytest.fixture
def pair(backend: Backend) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Instances A and B of one deployment, with the first admin already made."""
    _seed_admin(backend)
    with running_server(backend.settings) as a, running_server(backend.settings) as b:
        yield a, b


def _login(base_url: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_a_user_made_through_one_instance_signs_in_through_the_other(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    with closing(sign_in(a.url, "ada")) as admin_a:
        created = admin_a.post(
            "/api/v1/users", json={"username": "otto", "password": PASSWORD, "role": "operator"}
        )
        assert created.status_code == 201, created.text
        # A token issued by A is accepted by B (same key, same session store).
        with httpx.Client(base_url=b.url, headers=dict(admin_a.headers), timeout=10) as admin_b:
            assert admin_b.get("/api/v1/me").json()["username"] == "ada"
    with closing(sign_in(b.url, "otto")) as otto_b:
        assert otto_b.get("/api/v1/me").json()["role"] == "operator"
        # Signing out through B ends the session for A too.
        with httpx.Client(base_url=a.url, headers=dict(otto_b.headers), timeout=10) as otto_a:
            assert otto_a.get("/api/v1/me").status_code == 200
            assert otto_b.post("/api/v1/auth/logout").status_code == 204
            # A learns of it over Redis, moments later (not after its 5 s cache TTL).
            deadline = time.monotonic() + 1.0
            while (status := otto_a.get("/api/v1/me").status_code) == 200:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            assert status == 401


def test_settings_are_shared_and_a_stale_write_through_the_other_is_409(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    url = "/api/v1/settings/hosts.down_after_missed"
    with closing(sign_in(a.url, "ada")) as admin_a, closing(sign_in(b.url, "ada")) as admin_b:
        seen_by_b = admin_b.get(url).json()
        assert seen_by_b["version"] == 0
        written = admin_a.put(url, json={"value": 7, "expected_version": 0, "reason": "via A"})
        assert written.status_code == 200, written.text
        after = admin_b.get(url).json()
        assert (after["value"], after["version"], after["updated_by"]) == (7, 1, "ada")
        # B's editor still holds version 0: its write must not overwrite A's.
        stale = admin_b.put(url, json={"value": 9, "expected_version": 0, "reason": "via B"})
        assert stale.status_code == 409
        assert stale.json()["error"]["code"] == "conflict"
        assert admin_a.get(url).json()["value"] == 7


def test_an_event_from_one_instance_reaches_a_subscriber_of_the_other(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    url = "/api/v1/settings/collector.interval_seconds"
    with closing(sign_in(a.url, "ada")) as admin_a:
        headers = {"Authorization": admin_a.headers["Authorization"]}
        with connect(f"{b.ws_url}/api/v1/events?topics=settings", additional_headers=headers) as ws:
            # B says when its subscription stands; only then is a write sure to reach it.
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
            written = admin_a.put(url, json={"value": 2, "expected_version": 0})
            assert written.status_code == 200, written.text
            message = json.loads(ws.recv(timeout=5))
            while "type" in message:  # heartbeats and other notices
                message = json.loads(ws.recv(timeout=5))
    assert message["topic"] == "settings"
    assert message["data"]["key"] == "collector.interval_seconds"
    assert message["data"]["version"] == 1


def test_failed_sign_ins_through_one_instance_lock_the_account_on_the_other(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    threshold = 5  # auth.lockout_threshold's default
    for _ in range(threshold):
        assert _login(a.url, "ada", "wrong password!").status_code == 401
    locked = _login(b.url, "ada", PASSWORD)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert locked.json()["error"]["code"] == "rate_limited"


# -- retention runs once across the deployment ----------------------------------

OLD = 800 * 86_400
"""Older than every default retention (the longest, 1-hour rollups, is 730 days)."""


async def _count(core: Core, table: Any) -> int:
    async with core.db.reader() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


def _old_points(count: int) -> list[PointIn]:
    start = time.time() - OLD
    return [
        PointIn(host=f"node-{i % 3}", metric="load.1", ts=start + 7.0 * i, value=float(i))
        for i in range(count)
    ]


@pytest.mark.asyncio
async def test_retention_runs_once_across_instances(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Core.open(backend.settings) as one, Core.open(backend.settings) as two:
        await one.metrics.ingest(Principal.system(), _old_points(600))
        raw = await _count(one, metric_points)
        rollups = await _count(one, metric_rollups)
        assert raw == 600
        assert rollups > 0

        # While another instance holds the job lock, nobody does the work.
        url = (backend.settings.database_url or "").replace("+psycopg", "", 1)
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK,))
            assert await one.metrics.apply_retention() == {}
            assert await two.metrics.apply_retention() == {}
            holder.execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK,))
        assert await _count(one, metric_points) == raw

        # Hold the winner inside its transaction long enough for the other
        # instance's attempt to overlap it, whichever of the two wins.
        delete_points = metric_store.delete_points_before

        async def slow_delete(session: AsyncSession, ids: Sequence[int], cutoff: float) -> int:
            deleted = await delete_points(session, ids, cutoff)
            await asyncio.sleep(0.5)
            return deleted

        monkeypatch.setattr(metric_store, "delete_points_before", slow_delete)
        results = await asyncio.gather(one.metrics.apply_retention(), two.metrics.apply_retention())

        worked = [result for result in results if result]
        assert len(worked) == 1, results
        assert results.count({}) == 1
        # Every row was deleted exactly once, by the one that did the work.
        assert worked[0]["raw"] == raw
        assert sum(worked[0].values()) == raw + rollups
        assert await _count(two, metric_points) == 0
        assert await _count(two, metric_rollups) == 0
