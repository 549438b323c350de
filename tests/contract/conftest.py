"""One client contract, two implementations: every scenario runs against both.

`client` is signed in as the admin "ada" and parametrized over LocalClient
(the core on a backend thread) and RemoteClient (a real uvicorn server on a
loopback port), each on SQLite and on PostgreSQL + Redis. The tests run on a
qasync loop, as the console does, so what passes here is what the window
sees (pytest-asyncio's `pytest_asyncio_loop_factories` hook, applied to this
directory only).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from console.client.local import LocalClient
from console.client.protocol import Client
from tests.conftest import PASSWORD, Backend

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


_LOOPS: list[Any] = []
"""Every qasync loop made, kept alive until the run ends.

A closed loop's timer object is a Python-owned QObject in a reference cycle;
left to the garbage collector, it may be destroyed by a collection that runs
on another thread (the backend's, the server's), where Qt cannot unregister
its timers, and a later timer event then reaches freed memory (a segfault
in `QTimerInfoList::activateTimers`). Kept here, it never is."""


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Run every contract test on a qasync loop over the Qt event loop, as the app does."""
    import qasync
    from PySide6.QtWidgets import QApplication

    def qasync_loop() -> qasync.QEventLoop:
        app = QApplication.instance() or QApplication([])
        loop = qasync.QEventLoop(app)
        _LOOPS.append(loop)
        return loop

    return {"qasync": qasync_loop}


@dataclass
class Harness:
    """What a scenario needs beside the client: a way in that is not the client."""

    kind: str
    backend: Backend
    client: Client
    ingest_points: Callable[[list[dict[str, Any]]], Any]
    """Push metric points as an agent would (through the core or the API)."""
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(params=["local"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def fresh(kind: str, backend: Backend) -> AsyncIterator[Client]:
    """A client to a backend with no user at all, not signed in."""
    client = await LocalClient.open(backend.settings)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture
async def harness(kind: str, backend: Backend) -> AsyncIterator[Harness]:
    """A client signed in as the admin "ada", on a backend with only her account."""
    local = await LocalClient.open(backend.settings)
    try:
        await local.create_first_admin(username="ada", password=PASSWORD)

        async def ingest(points: list[dict[str, Any]]) -> None:
            from backend.domain.principal import Principal

            await local.backend_call(lambda core: core.metrics.ingest(Principal.system(), points))

        yield Harness(kind, backend, local, ingest)
    finally:
        await local.close()


@pytest.fixture
def client(harness: Harness) -> Client:
    return harness.client
