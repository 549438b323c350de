"""The embedded backend's thread: the caller's loop keeps running whatever the core does."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
from sqlalchemy import text

from backend.core import Core
from console.client.bridge import Bridge, BridgeClosed
from console.client.local import LocalClient
from console.client.types import ConnectionState, Event
from tests.conftest import PASSWORD, Backend

pytestmark = pytest.mark.asyncio


async def test_slow_backend_call_does_not_block_the_callers_loop(backend: Backend) -> None:
    client = await LocalClient.open(backend.settings)
    try:

        async def stall_the_backend_loop() -> str:
            time.sleep(0.6)  # noqa: ASYNC251 - holds the backend loop, as a slow query would
            return "done"

        ticks: list[float] = []

        async def tick() -> None:
            while True:
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        started = time.perf_counter()
        assert await client.backend_call(lambda _core: stall_the_backend_loop()) == "done"
        elapsed = time.perf_counter() - started
        ticker.cancel()
        assert elapsed >= 0.6
        during = [t for t in ticks if t <= started + elapsed]
        gaps = [b - a for a, b in itertools.pairwise(during)]
        assert len(during) > 20
        assert max(gaps) < 0.2
    finally:
        await client.close()
    assert client.status.state is ConnectionState.OFFLINE


async def test_events_cross_the_bridge_and_stop_when_cancelled(backend: Backend) -> None:
    client = await LocalClient.open(backend.settings)
    try:
        await client.create_first_admin(username="ada", password=PASSWORD)
        received: list[Event] = []
        arrived = asyncio.Event()
        stream = client.events(["users"])

        async def read() -> None:
            async with aclosing(stream):
                async for message in stream:
                    assert isinstance(message, Event)
                    received.append(message)
                    arrived.set()

        reader = asyncio.create_task(read())
        await stream.ready()  # subscribed on the backend loop, before any read
        await client.create_user(username="otto", password=PASSWORD, role="operator")
        async with asyncio.timeout(10):
            await arrived.wait()
        assert received[0].topic == "users"
        assert received[0].data["user"]["username"] == "otto"
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
    finally:
        await client.close()


async def test_a_stream_cancelled_while_it_starts_closes_its_source() -> None:
    """The reader is cancelled after the backend started the producer, before it heard so.

    The producer must not be left running with nobody to stop it (it kept the
    backend thread from ending, so `LocalClient.close` hung).
    """
    bridge = Bridge()
    await bridge.start()
    opened = threading.Event()
    closed = threading.Event()

    async def source() -> AsyncIterator[int]:
        opened.set()
        try:
            await asyncio.Event().wait()  # nothing ever arrives
            yield 0
        finally:
            closed.set()

    async def open_source() -> AsyncIterator[int]:
        return source()

    try:
        stream = bridge.stream(open_source)
        reader = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the stream has asked the backend loop to start the producer
        # Hold this loop (on purpose) until the producer runs: its word that the
        # source is open then waits here, unread, when the reader is cancelled.
        assert opened.wait(5)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert await asyncio.to_thread(closed.wait, 5)
    finally:
        async with asyncio.timeout(5):
            await bridge.stop()


SLOW_QUERY = text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000)"
    " SELECT count(*) FROM c"
)
"""A read that runs for a second or more, far longer than a client takes to close."""


async def _slow_read(core: Core) -> int:
    async with core.db.reader() as session:
        return int((await session.execute(SLOW_QUERY)).scalar_one())


@pytest.mark.parametrize("wait_for_cancel", [True, False], ids=["awaited", "not-awaited"])
async def test_close_right_after_a_cancelled_query_ends(
    backend: Backend, wait_for_cancel: bool
) -> None:
    """Cancel a query while the database runs it, then close at once.

    On SQLite this hung for good: the cancelled call was still closing its
    connection (waiting for the query to end) when the bridge's loop stopped
    and cancelled it again, and aiosqlite's close then waited for a worker
    thread that the second cancellation had stopped.
    """
    for _ in range(2):
        client = await LocalClient.open(backend.settings)
        query = asyncio.ensure_future(client.backend_call(_slow_read))
        await asyncio.sleep(0.3)  # the query runs on the database now
        assert not query.done()
        query.cancel()
        if wait_for_cancel:
            with pytest.raises(asyncio.CancelledError):
                await query
        async with asyncio.timeout(30):
            await client.close()
        assert query.done()
        assert client.status.state is ConnectionState.OFFLINE


async def test_a_cancelled_call_ends_on_the_backend_before_the_caller_goes_on() -> None:
    """The caller's cancellation completes only once the coroutine has ended, cancelled once."""
    bridge = Bridge()
    await bridge.start()
    started = threading.Event()
    cancellations: list[str] = []
    cleaned_up = threading.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancellations.append("cancelled")
            await asyncio.sleep(0.3)  # cleanup, as closing a connection is
            cleaned_up.set()
            raise

    try:
        call = asyncio.ensure_future(bridge.call(work()))
        assert await asyncio.to_thread(started.wait, 5)
        call.cancel()
        await asyncio.sleep(0.05)
        call.cancel()  # again, during the cleanup: not passed on
        with pytest.raises(asyncio.CancelledError):
            await call
        assert cleaned_up.is_set()
        assert cancellations == ["cancelled"]
    finally:
        async with asyncio.timeout(5):
            await bridge.stop()


async def test_stop_ends_the_calls_in_flight_and_they_fail() -> None:
    bridge = Bridge()
    await bridge.start()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    call = asyncio.ensure_future(bridge.call(forever()))
    assert await asyncio.to_thread(started.wait, 5)
    async with asyncio.timeout(5):
        await bridge.stop()
    with pytest.raises(BridgeClosed):
        await call
    with pytest.raises(BridgeClosed):
        await bridge.call(forever())
