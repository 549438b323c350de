"""Live events through either client, and a remote stream that survives a dropped link
or a server that cuts it off for reading too slowly."""

from __future__ import annotations

import asyncio
import re
from contextlib import aclosing

import httpx
import pytest

from backend.api.routes.events import StreamOptions
from console.client.errors import Forbidden, InvalidInput
from console.client.protocol import Client, EventStream
from console.client.remote import RemoteClient
from console.client.types import ConnectionState, ConnectionStatus, Event, StreamReset
from tests.api.server import RunningServer
from tests.conftest import PASSWORD
from tests.contract.conftest import FAST, Harness
from tests.contract.proxy import link_to

pytestmark = pytest.mark.asyncio
WAIT = 15.0


class Reader:
    """Reads a client's event stream in a task, so a test can act meanwhile."""

    def __init__(self, client: Client, topics: list[str]) -> None:
        self.received: list[Event | StreamReset] = []
        self._stream = client.events(topics)
        self._more = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def ready(self) -> None:
        await self._stream.ready()

    async def _read(self) -> None:
        async with aclosing(self._stream) as stream:
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


async def next_message(stream: EventStream) -> Event | StreamReset:
    async with asyncio.timeout(WAIT):
        return await anext(stream)


async def test_a_created_user_arrives_as_an_event(harness: Harness) -> None:
    client = harness.client
    reader = Reader(client, ["users"])
    await reader.ready()
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
        await stream.ready()
    with pytest.raises(Forbidden):  # a panel that only iterates hears it too
        await anext(stream)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await stream.aclose()

    iterated = client.events(["users", "audit"])  # what may be read is followed
    await iterated.ready()
    await iterated.aclose()
    with pytest.raises(InvalidInput):
        await client.events(["weather"]).ready()


async def test_an_event_published_right_after_ready_is_received(harness: Harness) -> None:
    """Subscribing starts when the stream is made; ready() says when it has."""
    client = harness.client
    for round_ in range(5):
        async with aclosing(client.events(["hosts"])) as stream:
            await stream.ready()
            (published,) = await harness.publish("hosts", [{"round": round_}])
            received = await next_message(stream)
        assert isinstance(received, Event)
        assert (received.id, received.data) == (published, {"round": round_})


async def test_events_between_making_the_stream_and_reading_it_are_kept(
    harness: Harness,
) -> None:
    """The pattern panels follow: subscribe, load the state, then read the changes."""
    client = harness.client
    async with aclosing(client.events(["users"])) as stream:
        await stream.ready()
        assert [user.username for user in await client.list_users()] == ["ada"]
        await client.create_user(username="otto", password=PASSWORD, role="viewer")
        await client.create_user(username="olga", password=PASSWORD, role="viewer")
        first, second = await next_message(stream), await next_message(stream)
    assert usernames([first, second]) == ["otto", "olga"]


async def test_closing_ends_a_pending_read_and_is_not_waited_for(harness: Harness) -> None:
    client = harness.client
    stream = client.events(["users"])
    await stream.ready()
    read = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await read
    await stream.aclose()  # again: nothing to do
    await stream.ready()  # a closed stream is not waited for

    unread = client.events(["users"])
    await client.close()  # closes the streams still open
    await unread.ready()
    with pytest.raises(StopAsyncIteration):
        await anext(unread)


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
            await reader.ready()
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


async def prometheus(server: RunningServer, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


async def test_remote_reader_too_slow_for_the_server_loses_nothing(harness: Harness) -> None:
    """The server cuts off a reader that falls behind (4008); it resumes with `since`."""
    if harness.server is None:
        pytest.skip("an embedded backend has no server to fall behind")
    server = harness.server
    server.app.state.event_stream = StreamOptions(queue_size=16, slow_after=0.3, close_timeout=20)
    client = RemoteClient(server.url, ping_interval=0.2, backoff=FAST, stream_buffer=1)
    states: list[ConnectionStatus] = []
    client.add_status_listener(states.append)
    count, pad = 600, "x" * 16_000  # ~10 MB: more than the socket buffers take
    try:
        await client.sign_in("ada", PASSWORD)
        async with aclosing(client.events(["hosts"])) as stream:
            await stream.ready()
            # Nothing is read while all of this is published...
            published = await harness.publish("hosts", [{"n": n, "pad": pad} for n in range(count)])
            async with asyncio.timeout(WAIT):
                dropped = "quarterdeck_ws_slow_clients_dropped_total"
                while await prometheus(server, dropped) < 1:  # noqa: ASYNC110 - the server's count
                    await asyncio.sleep(0.05)
            # ...then everything is, across the reconnection.
            received = [await next_message(stream) for _ in range(count)]
        assert [m.id for m in received if isinstance(m, Event)] == published
        cut = [s for s in states if s.state is ConnectionState.RECONNECTING]
        assert any("4008" in status.detail for status in cut)
        await state_becomes(client, ConnectionState.LIVE)
    finally:
        await client.close()
