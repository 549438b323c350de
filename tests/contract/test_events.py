"""Live events through either client, and a remote stream that survives a dropped link."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx
import pytest

from console.client.errors import Forbidden
from console.client.protocol import Client
from console.client.remote import RemoteClient
from console.client.types import ConnectionState, ConnectionStatus, Event, StreamReset
from tests.conftest import PASSWORD
from tests.contract.conftest import FAST, Harness
from tests.contract.proxy import link_to

pytestmark = pytest.mark.asyncio
WAIT = 15.0


class Reader:
    """Reads a client's event stream in a task, so a test can act meanwhile."""

    def __init__(self, client: Client, topics: list[str]) -> None:
        self.received: list[Event | StreamReset] = []
        self._stream: AsyncIterator[Event | StreamReset] = client.events(topics)
        self._more = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async with aclosing(self._stream) as stream:  # type: ignore[type-var]
            async for message in stream:
                async with self._more:
                    self.received.append(message)
                    self._more.notify_all()

    async def until(self, count: int) -> list[Event | StreamReset]:
        async with asyncio.timeout(WAIT), self._more:
            await self._more.wait_for(lambda: len(self.received) >= count or self._task.done())
        if self._task.done():
            self._task.result()
        return self.received[:count]

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def usernames(messages: list[Event | StreamReset]) -> list[str]:
    return [m.data["user"]["username"] for m in messages if isinstance(m, Event)]


async def state_becomes(client: Client, state: ConnectionState) -> None:
    """Wait, through the status listeners, until the client reports `state`."""
    reached = asyncio.Event()

    def check(status: ConnectionStatus) -> None:
        if status.state is state:
            reached.set()

    remove = client.add_status_listener(check)
    try:
        if client.status.state is not state:
            async with asyncio.timeout(WAIT):
                await reached.wait()
    finally:
        remove()


async def subscribed(client: Client) -> None:
    """Give the subscription time to open (it starts at the first read)."""
    await asyncio.sleep(0.5)


async def test_a_created_user_arrives_as_an_event(harness: Harness) -> None:
    client = harness.client
    reader = Reader(client, ["users"])
    await subscribed(client)
    created = await client.create_user(username="otto", password=PASSWORD, role="operator")
    (event,) = await reader.until(1)
    assert isinstance(event, Event)
    assert (event.topic, event.data["action"]) == ("users", "created")
    assert event.data["user"]["id"] == created.id
    await reader.stop()


async def test_topics_nobody_may_read_are_refused(harness: Harness) -> None:
    client = harness.client
    await client.create_user(username="vera", password=PASSWORD, role="viewer")
    await client.sign_out()
    await client.sign_in("vera", PASSWORD)
    stream = client.events(["audit"])
    with pytest.raises(Forbidden):
        await anext(stream)


async def test_remote_stream_resumes_after_a_dropped_link(harness: Harness) -> None:
    if harness.server is None:
        pytest.skip("an embedded backend has no link to drop")
    server_url = harness.server.url
    async with link_to(server_url) as link:
        client = RemoteClient(link.url, ping_interval=0.2, backoff=FAST)
        states: list[ConnectionStatus] = []
        client.add_status_listener(states.append)
        side = httpx.AsyncClient(base_url=server_url, timeout=10)
        try:
            await client.sign_in("ada", PASSWORD)
            login = await side.post(
                "/api/v1/auth/login", json={"username": "ada", "password": PASSWORD}
            )
            side.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

            async def create(name: str) -> None:
                response = await side.post(
                    "/api/v1/users", json={"username": name, "password": PASSWORD, "role": "viewer"}
                )
                response.raise_for_status()

            reader = Reader(client, ["users"])
            await subscribed(client)
            await create("before")
            assert usernames(await reader.until(1)) == ["before"]

            link.cut()
            await state_becomes(client, ConnectionState.RECONNECTING)
            for name in ("missed1", "missed2", "missed3"):
                await create(name)
            await asyncio.sleep(0.3)  # a few refused reconnection attempts
            link.restore()

            got = await reader.until(4)
            assert usernames(got) == ["before", "missed1", "missed2", "missed3"]
            await create("after")
            got = await reader.until(5)
            assert usernames(got) == ["before", "missed1", "missed2", "missed3", "after"]
            assert len(reader.received) == 5  # nothing repeated
            await state_becomes(client, ConnectionState.LIVE)
            seen = [status.state for status in states]
            assert ConnectionState.RECONNECTING in seen
            assert seen[-1] is ConnectionState.LIVE
            assert client.status.latency_ms is not None
            await reader.stop()
        finally:
            await side.aclose()
            await client.close()
