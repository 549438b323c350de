"""Streams that start from an earlier event: resumed exactly, or reset when it is gone.

The back end here keeps only 100 events (the least allowed), so a few
hundred published make an early id no longer retained: in the memory bus's
ring, in Redis' trimmed stream, and so on the server behind either.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from console.client.protocol import EventStream
from console.client.types import Event, StreamReset
from tests.conftest import Backend
from tests.contract.conftest import Harness

pytestmark = pytest.mark.asyncio
WAIT = 15.0


@pytest.fixture
def backend(backend: Backend) -> Backend:
    """The usual back ends, keeping 100 events instead of 10,000."""
    return Backend(backend.kind, backend.settings.model_copy(update={"event_retention": 100}))


async def next_message(stream: EventStream) -> Event | StreamReset:
    async with asyncio.timeout(WAIT):
        return await anext(stream)


async def test_since_a_retained_event_resumes_right_after_it(harness: Harness) -> None:
    first, second, third = await harness.publish("hosts", [{"n": 1}, {"n": 2}, {"n": 3}])
    async with aclosing(harness.client.events(["hosts"], since=first)) as stream:
        await stream.ready()
        resumed = [await next_message(stream), await next_message(stream)]
    assert [m.id for m in resumed if isinstance(m, Event)] == [second, third]


async def test_since_an_event_no_longer_retained_resets_then_goes_on(harness: Harness) -> None:
    (old,) = await harness.publish("hosts", [{"n": "old"}])
    # Redis trims whole stream nodes (100 entries each), so go well past one.
    await harness.publish("hosts", [{"n": n} for n in range(300)])
    async with aclosing(harness.client.events(["hosts"], since=old)) as stream:
        await stream.ready()
        assert await next_message(stream) == StreamReset(old)
        # Then live events, from now: what was lost is covered by the reload.
        (later,) = await harness.publish("hosts", [{"n": "later"}])
        after = await next_message(stream)
    assert isinstance(after, Event)
    assert after.id == later
