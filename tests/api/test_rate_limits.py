"""The per-principal request budget: 429 with Retry-After, shared by every instance.

The limit is the run-time setting `api.requests_per_minute`; the tests set
it low before the server starts, since a running server reuses its reading
of the setting for a few seconds (`backend.api.ratelimit.LIMIT_TTL`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from backend.api.ratelimit import SETTING, WINDOW, RequestBudget
from backend.core import Core
from backend.domain.errors import RateLimited
from backend.domain.permissions import Role
from backend.domain.principal import Principal
from tests.api.conftest import sign_in
from tests.api.server import RunningServer, running_server
from tests.conftest import PASSWORD, Backend, Team

LIMIT = 8


def _seed(backend: Backend, limit: int) -> None:
    """Ada (admin) and Otto (operator), and the request limit set to `limit`."""

    async def run() -> None:
        async with Core.open(backend.settings) as core:
            ada = await core.users.create_first_admin(username="ada", password=PASSWORD)
            admin = Principal.for_user(user_id=ada.id, username="ada", role=Role.ADMIN)
            await core.users.create(admin, username="otto", password=PASSWORD, role="operator")
            await core.settings.write(admin, SETTING, limit, expected_version=0, reason="test")

    asyncio.run(run())


@pytest.fixture
def limited(backend: Backend) -> Iterator[RunningServer]:
    _seed(backend, LIMIT)
    with running_server(backend.settings) as running:
        yield running


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"]["limit"] == LIMIT
    assert 0 < error["details"]["retry_after"] <= WINDOW


def test_a_burst_over_the_limit_is_429_with_retry_after(limited: RunningServer) -> None:
    with closing(sign_in(limited.url, "ada")) as ada, closing(sign_in(limited.url, "otto")) as otto:
        statuses = [ada.get("/api/v1/me").status_code for _ in range(LIMIT)]
        assert statuses == [200] * LIMIT
        _assert_limited(ada.get("/api/v1/me"))
        _assert_limited(ada.get("/api/v1/settings"))
        # The budget is the caller's own: another user is not held back.
        assert otto.get("/api/v1/me").status_code == 200
        # Routes without a principal are outside it.
        assert ada.get("/healthz").status_code == 200


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_instances_share_one_budget(backend: Backend) -> None:
    _seed(backend, LIMIT)
    with (
        running_server(backend.settings) as a,
        running_server(backend.settings) as b,
        closing(sign_in(a.url, "ada")) as ada_a,
        httpx.Client(base_url=b.url, headers=dict(ada_a.headers), timeout=10) as ada_b,
    ):
        half = LIMIT // 2
        assert [ada_a.get("/api/v1/me").status_code for _ in range(half)] == [200] * half
        rest = LIMIT - half
        assert [ada_b.get("/api/v1/me").status_code for _ in range(rest)] == [200] * rest
        _assert_limited(ada_a.get("/api/v1/me"))
        _assert_limited(ada_b.get("/api/v1/me"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_the_limit_follows_the_setting_after_the_cache_ttl(core: Core, team: Team) -> None:
    clock = Clock()
    budget = RequestBudget(core, ttl=5.0, clock=clock)
    await core.settings.write(team.admin, SETTING, 2, expected_version=0)
    await budget.charge(team.operator)
    await budget.charge(team.operator)
    with pytest.raises(RateLimited) as raised:
        await budget.charge(team.operator)
    assert 0 < raised.value.retry_after <= WINDOW

    # 0 means unlimited, once the cached reading of the setting has expired.
    await core.settings.write(team.admin, SETTING, 0, expected_version=1)
    clock.now += 4.0
    with pytest.raises(RateLimited):
        await budget.charge(team.operator)
    clock.now += 1.0
    for _ in range(20):
        await budget.charge(team.operator)
    assert await budget.limit() == 0
