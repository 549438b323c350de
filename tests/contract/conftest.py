"""One client contract, two implementations: every scenario runs against both.

`client` is signed in as the admin "ada" and parametrized over LocalClient
(the core on a backend thread) and RemoteClient (a real uvicorn server on a
loopback port), each on SQLite and on PostgreSQL + Redis. The tests run on a
qasync loop, as the console does, so what passes here is what the window
sees (pytest-asyncio's `pytest_asyncio_loop_factories` hook, applied to this
directory only).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from backend.config import Settings
from backend.core import Core
from backend.domain.principal import Principal
from console.client.local import LocalClient
from console.client.protocol import Client
from console.client.remote import RemoteClient
from console.client.remote_events import Backoff
from tests.api.server import RunningServer, running_server
from tests.conftest import PASSWORD, Backend
from tests.qtloop import new_qasync_loop

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Run this directory's async tests on a qasync loop over the Qt event loop, as the app does."""
    return {"qasync": new_qasync_loop}


@dataclass
class Harness:
    """What a scenario needs beside the client: a way in that is not the client."""

    kind: str
    backend: Backend
    client: Client
    ingest_points: Callable[[list[dict[str, Any]]], Awaitable[None]]
    """Push metric points as an agent would (through the core or the API)."""
    server: RunningServer | None = None

    async def publish(self, topic: str, items: list[dict[str, Any]]) -> list[str]:
        """Publish one event per item straight on the backend's bus; their ids.

        What the services do after a change, without the change: for tests
        that need many events, or events at an exact moment.
        """

        async def run(core: Core) -> list[str]:
            return [await core.ctx.bus.publish(topic, item) for item in items]

        if self.server is not None:
            return await publish_on_server(self.server, topic, items)
        assert isinstance(self.client, LocalClient)
        return await self.client.backend_call(run)


async def publish_on_server(
    server: RunningServer, topic: str, items: list[dict[str, Any]]
) -> list[str]:
    """Publish on a running server's bus, from the server's own loop (where the bus lives)."""
    core: Core = server.app.state.core
    loop = server.server.servers[0].get_loop()

    async def run() -> list[str]:
        return [await core.ctx.bus.publish(topic, item) for item in items]

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))


@pytest.fixture(params=["local", "remote"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(kind: str, backend: Backend) -> Iterator[RunningServer | None]:
    """For RemoteClient, a real server over the backend; None for LocalClient."""
    if kind == "local":
        yield None
        return
    with running_server(backend.settings) as running:
        yield running


async def open_client(backend: Backend, server: RunningServer | None) -> Client:
    if server is None:
        return await LocalClient.open(backend.settings, ping_interval=0.5)
    return RemoteClient(server.url, ping_interval=0.5, backoff=FAST)


FAST = Backoff(first=0.05, most=0.5)
"""Reconnection delays for tests: the behaviour without the waiting."""


@pytest_asyncio.fixture
async def fresh(backend: Backend, server: RunningServer | None) -> AsyncIterator[Client]:
    """A client to a backend with no user at all, not signed in."""
    client = await open_client(backend, server)
    try:
        yield client
    finally:
        await client.close()


def _seed_admin(settings: Settings) -> None:
    """The first admin, made on the server's side as `quarterdeck user create` does."""

    async def run() -> None:
        async with Core.open(settings.model_copy(update={"live_events": False})) as core:
            await core.users.create_first_admin(username="ada", password=PASSWORD)

    asyncio.run(run())


@pytest_asyncio.fixture
async def harness(backend: Backend, server: RunningServer | None) -> AsyncIterator[Harness]:
    """A client signed in as the admin "ada", on a backend with only her account."""
    client = await open_client(backend, server)
    try:
        if isinstance(client, LocalClient):
            local = client
            await local.create_first_admin(username="ada", password=PASSWORD)

            async def ingest(points: list[dict[str, Any]]) -> None:
                await local.backend_call(
                    lambda core: core.metrics.ingest(Principal.system(), points)
                )

        else:
            assert server is not None
            url = server.url
            await asyncio.to_thread(_seed_admin, backend.settings)
            await client.sign_in("ada", PASSWORD)

            async def ingest(points: list[dict[str, Any]]) -> None:
                async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                    login = await http.post(
                        "/api/v1/auth/login", json={"username": "ada", "password": PASSWORD}
                    )
                    token = login.raise_for_status().json()["access_token"]
                    pushed = await http.post(
                        "/api/v1/metrics",
                        json={"points": points},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    pushed.raise_for_status()

        yield Harness(client_kind(client), backend, client, ingest, server)
    finally:
        await client.close()


def client_kind(client: Client) -> str:
    return "local" if client.embedded else "remote"


@pytest.fixture
def client(harness: Harness) -> Client:
    return harness.client
