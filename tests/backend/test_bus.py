"""One contract, two back ends: the memory and Redis buses must be interchangeable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from uuid import uuid4

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from backend.bus.base import BusMessage, EventBus
from backend.bus.factory import BusBundle, open_bus
from backend.bus.memory import MemoryBus
from backend.bus.redis import RedisBus
from backend.domain.events import Event, StreamReset
from tests.services import redis_url

RETENTION = 5
# Redis trims approximately (whole stream nodes of ~100 entries), so "more than
# retained" has to be well past a node for both back ends.
OVERFLOW = 250


@pytest_asyncio.fixture(params=["memory", "redis"])
async def bundle(request: pytest.FixtureRequest) -> AsyncIterator[BusBundle]:
    prefix = f"qdtest:{uuid4().hex}:"
    url = redis_url() if request.param == "redis" else None
    opened = await open_bus(url, prefix, RETENTION)
    try:
        yield opened
    finally:
        if opened.client is not None:
            keys = [key async for key in opened.client.scan_iter(match=f"{prefix}*")]
            if keys:
                await opened.client.delete(*keys)
        await opened.close()


def order(event_id: str) -> tuple[int, ...]:
    """Memory ids are "n", Redis ids "ms-seq": both order as integer tuples."""
    return tuple(int(part) for part in event_id.split("-"))


async def receive(sub: AsyncIterator[BusMessage]) -> BusMessage:
    async with asyncio.timeout(3):
        return await anext(sub)


async def receive_events(sub: AsyncIterator[BusMessage], count: int) -> list[Event]:
    received = [await receive(sub) for _ in range(count)]
    assert all(isinstance(item, Event) for item in received), received
    return [item for item in received if isinstance(item, Event)]


@pytest.mark.asyncio
async def test_ids_increase_and_last_id_is_newest(bundle: BusBundle) -> None:
    assert await bundle.bus.last_id() is None
    ids = [await bundle.bus.publish("hosts", {"n": n}) for n in range(10)]
    assert [order(i) for i in ids] == sorted(order(i) for i in ids)
    assert len(set(ids)) == 10
    assert await bundle.bus.last_id() == ids[-1]
    await bundle.bus.ping()


@pytest.mark.asyncio
async def test_since_replays_exactly_the_later_events_then_live_ones(bundle: BusBundle) -> None:
    bus = bundle.bus
    await bus.publish("hosts", {"n": 0})
    since = await bus.publish("hosts", {"n": 1})
    await bus.publish("alerts", {"n": 2, "nested": {"ok": True}})
    await bus.publish("hosts", {"n": 3})
    async with aclosing(bus.subscribe(since=since)) as sub:
        replayed = await receive_events(sub, 2)
        live_id = await bus.publish("users", {"n": 4})
        (live,) = await receive_events(sub, 1)
    assert [(e.topic, e.data) for e in replayed] == [
        ("alerts", {"n": 2, "nested": {"ok": True}}),
        ("hosts", {"n": 3}),
    ]
    assert (live.id, live.topic, live.data) == (live_id, "users", {"n": 4})
    assert isinstance(live.ts, float)
    assert live.ts > 1e9


@pytest.mark.asyncio
async def test_without_since_only_live_events_arrive(bundle: BusBundle) -> None:
    await bundle.bus.publish("hosts", {"n": "old"})
    async with aclosing(bundle.bus.subscribe()) as sub:
        pending = asyncio.ensure_future(receive(sub))
        await asyncio.sleep(0.2)  # let the subscriber settle on its start position
        await bundle.bus.publish("hosts", {"n": "new"})
        event = await pending
    assert isinstance(event, Event)
    assert event.data == {"n": "new"}


@pytest.mark.asyncio
async def test_topic_filter(bundle: BusBundle) -> None:
    since = await bundle.bus.publish("settings", {})
    for n, topic in enumerate(["hosts", "metrics", "alerts", "metrics", "audit"]):
        await bundle.bus.publish(topic, {"n": n})
    async with aclosing(bundle.bus.subscribe({"metrics", "audit"}, since)) as sub:
        events = await receive_events(sub, 3)
    assert [(e.topic, e.data["n"]) for e in events] == [
        ("metrics", 1),
        ("metrics", 3),
        ("audit", 4),
    ]


@pytest.mark.asyncio
async def test_since_older_than_retention_resets_first_then_live(bundle: BusBundle) -> None:
    bus = bundle.bus
    since = await bus.publish("hosts", {"n": 0})
    for n in range(OVERFLOW):
        await bus.publish("hosts", {"n": n + 1})
    async with aclosing(bus.subscribe(since=since)) as sub:
        assert await receive(sub) == StreamReset(since)
        await bus.publish("alerts", {"n": "live"})
        (live,) = await receive_events(sub, 1)
    assert live.data == {"n": "live"}


@pytest.mark.parametrize("since", ["not-an-id", "99999999999999-0", "99999999999999"])
@pytest.mark.asyncio
async def test_unknown_since_resets(bundle: BusBundle, since: str) -> None:
    """An id from another stream or process must not silently skip or stall."""
    await bundle.bus.publish("hosts", {})
    async with aclosing(bundle.bus.subscribe(since=since)) as sub:
        assert await receive(sub) == StreamReset(since)


@pytest.mark.asyncio
async def test_subscriber_that_falls_behind_gets_reset_then_continues(bundle: BusBundle) -> None:
    bus = bundle.bus
    since = await bus.publish("hosts", {"n": 0})
    async with aclosing(bus.subscribe(since=since)) as sub:
        seen_id = await bus.publish("hosts", {"n": 1})
        (seen,) = await receive_events(sub, 1)
        assert seen.id == seen_id
        for n in range(OVERFLOW):
            await bus.publish("hosts", {"n": n + 2})
        assert await receive(sub) == StreamReset(seen_id)
        await bus.publish("hosts", {"n": "after"})
        (after,) = await receive_events(sub, 1)
    assert after.data == {"n": "after"}


@pytest.mark.asyncio
async def test_two_subscribers_each_see_every_event(bundle: BusBundle) -> None:
    bus = bundle.bus
    since = await bus.publish("hosts", {})
    async with (
        aclosing(bus.subscribe(since=since)) as first,
        aclosing(bus.subscribe(since=since)) as second,
    ):
        readers = asyncio.gather(receive_events(first, 4), receive_events(second, 4))
        ids = [await bus.publish("alerts", {"n": n}) for n in range(4)]
        got_first, got_second = await readers
    assert [e.id for e in got_first] == ids
    assert [e.id for e in got_second] == ids


@pytest.mark.asyncio
async def test_close_ends_subscriptions(bundle: BusBundle) -> None:
    since = await bundle.bus.publish("hosts", {})
    async with aclosing(bundle.bus.subscribe(since=since)) as sub:
        pending = asyncio.ensure_future(receive(sub))
        await asyncio.sleep(0.05)
        await bundle.bus.close()
        with pytest.raises(StopAsyncIteration):
            await pending


@pytest.mark.asyncio
async def test_cache_get_set_delete_and_expiry(bundle: BusBundle) -> None:
    cache = bundle.cache
    assert await cache.get("k") is None
    await cache.set("k", "v", 10)
    assert await cache.get("k") == "v"
    await cache.delete("k")
    assert await cache.get("k") is None
    await cache.set("short", "v", 0.1)
    await asyncio.sleep(0.15)
    assert await cache.get("short") is None


@pytest.mark.asyncio
async def test_cache_incr_counts_until_expiry_from_creation(bundle: BusBundle) -> None:
    cache = bundle.cache
    assert [await cache.incr("n", 0.3) for _ in range(3)] == [1, 2, 3]
    assert await cache.get("n") == "3"
    await asyncio.sleep(0.35)  # later increments did not extend the expiry
    assert await cache.incr("n", 0.3) == 1


@pytest.mark.asyncio
async def test_rate_limiter_window(bundle: BusBundle) -> None:
    # A window long enough that a stall of the loaded test machine between
    # the hits cannot end it early (0.3 s once did, under CI load).
    limiter = bundle.limiter
    assert [await limiter.hit("ip", limit=3, window=1.0) for _ in range(3)] == [0, 0, 0]
    retry = await limiter.hit("ip", limit=3, window=1.0)
    assert 0 < retry <= 1.0
    assert await limiter.hit("other", limit=3, window=1.0) == 0
    await asyncio.sleep(retry + 0.05)
    assert await limiter.hit("ip", limit=3, window=1.0) == 0


@pytest.mark.asyncio
async def test_rate_limiter_reset(bundle: BusBundle) -> None:
    limiter = bundle.limiter
    assert await limiter.hit("ip", limit=1, window=10) == 0
    assert await limiter.hit("ip", limit=1, window=10) > 0
    await limiter.reset("ip")
    assert await limiter.hit("ip", limit=1, window=10) == 0


# -- the Redis bus: one reader per process, backlog from the stream ------------


@pytest_asyncio.fixture
async def redis_clients() -> AsyncIterator[tuple[str, list[Redis]]]:
    """A key prefix and a factory's worth of clients, as if in separate processes."""
    url = redis_url()
    prefix = f"qdtest:{uuid4().hex}:"
    made = [
        Redis.from_url(url, decode_responses=True, client_name=f"qd{uuid4().hex}") for _ in "ab"
    ]
    try:
        yield prefix, made
    finally:
        keys = [key async for key in made[0].scan_iter(match=f"{prefix}*")]
        if keys:
            await made[0].delete(*keys)
        for client in made:
            await client.aclose()


async def _connections(client: Redis) -> int:
    """Connections this client has open on the server (it names them all)."""
    name = client.get_connection_kwargs()["client_name"]
    return sum(1 for entry in await client.client_list() if entry.get("name") == name)


@pytest.mark.asyncio
async def test_redis_subscribers_share_one_connection(
    redis_clients: tuple[str, list[Redis]],
) -> None:
    prefix, (client, _) = redis_clients
    bus = RedisBus(client, prefix, retention=1000)
    since = await bus.publish("hosts", {})
    subs = [bus.subscribe(since=since) for _ in range(50)]
    try:
        readers = asyncio.gather(*(receive_events(sub, 3) for sub in subs))
        await asyncio.sleep(0.2)  # every subscriber is waiting on the ring now
        ids = [await bus.publish("hosts", {"n": n}) for n in range(3)]
        for got in await readers:
            assert [e.id for e in got] == ids
        # The reader's blocking XREAD, plus at most one for the command just issued.
        assert await _connections(client) <= 2
    finally:
        for sub in subs:
            await sub.aclose()
        await bus.close()


@pytest.mark.asyncio
async def test_redis_resume_older_than_local_ring_reads_the_stream_then_joins(
    redis_clients: tuple[str, list[Redis]],
) -> None:
    prefix, (client, _) = redis_clients
    bus = RedisBus(client, prefix, retention=1000, local_ring=8)
    try:
        async with aclosing(bus.subscribe()) as warm:
            pending = asyncio.ensure_future(receive_events(warm, 60))
            await asyncio.sleep(0.1)  # the reader follows the stream from here on
            first = await bus.publish("hosts", {"n": 0})
            published = [await bus.publish("hosts", {"n": n}) for n in range(1, 60)]
            await pending
        async with aclosing(bus.subscribe(since=first)) as sub:
            replayed = await receive_events(sub, 59)
            live = await bus.publish("alerts", {"n": "live"})
            (after,) = await receive_events(sub, 1)
        assert [e.id for e in replayed] == published
        assert [e.data["n"] for e in replayed] == list(range(1, 60))
        assert after.id == live
    finally:
        await bus.close()


@pytest.mark.asyncio
async def test_redis_subscriber_behind_the_local_ring_catches_up_without_reset(
    redis_clients: tuple[str, list[Redis]],
) -> None:
    prefix, (client, _) = redis_clients
    bus = RedisBus(client, prefix, retention=1000, local_ring=4)
    try:
        since = await bus.publish("hosts", {"n": 0})
        async with aclosing(bus.subscribe(since=since)) as sub:
            seen = await bus.publish("hosts", {"n": 1})
            assert [e.id for e in await receive_events(sub, 1)] == [seen]
            later = [await bus.publish("hosts", {"n": n}) for n in range(2, 40)]
            await asyncio.sleep(0.1)  # the reader has moved the ring well past `seen`
            assert [e.id for e in await receive_events(sub, len(later))] == later
    finally:
        await bus.close()


@pytest.mark.asyncio
async def test_redis_event_published_by_one_instance_reaches_the_other(
    redis_clients: tuple[str, list[Redis]],
) -> None:
    prefix, (client_a, client_b) = redis_clients
    bus_a = RedisBus(client_a, prefix, retention=1000)
    bus_b = RedisBus(client_b, prefix, retention=1000)
    try:
        since = await bus_a.publish("hosts", {"n": 0})
        async with aclosing(bus_b.subscribe(since=since)) as sub:
            sent = await bus_a.publish("settings", {"key": "x"})
            (got,) = await receive_events(sub, 1)
        assert (got.id, got.topic, got.data) == (sent, "settings", {"key": "x"})
    finally:
        await bus_a.close()
        await bus_b.close()


@pytest.mark.asyncio
async def test_redis_reader_turns_a_broken_chain_into_a_reset(
    redis_clients: tuple[str, list[Redis]],
) -> None:
    """Entries the reader never saw (trimmed while it was away) must not vanish silently."""
    prefix, (client, _) = redis_clients
    bus = RedisBus(client, prefix, retention=1000)
    try:
        since = await bus.publish("hosts", {"n": 0})
        async with aclosing(bus.subscribe(since=since)) as sub:
            seen = await bus.publish("hosts", {"n": 1})
            assert [e.id for e in await receive_events(sub, 1)] == [seen]
            # An entry whose predecessor is not the one before it, as after a trim.
            fields = {"topic": "hosts", "ts": "1.0", "data": "{}", "prev": "1-1"}
            orphan = await client.xadd(f"{prefix}events", fields)  # type: ignore[arg-type]
            assert await receive(sub) == StreamReset(seen)
            (after,) = await receive_events(sub, 1)
        assert after.id == orphan
    finally:
        await bus.close()


@pytest_asyncio.fixture(params=["memory", "redis"])
async def roomy_bus(
    request: pytest.FixtureRequest, redis_clients: tuple[str, list[Redis]]
) -> AsyncIterator[EventBus]:
    """Retention for every event of a test; the Redis bus keeps only 8 locally."""
    prefix, (client, _) = redis_clients
    bus: EventBus = (
        MemoryBus(1000)
        if request.param == "memory"
        else RedisBus(client, prefix, 1000, local_ring=8)
    )
    try:
        yield bus
    finally:
        await bus.close()


@pytest.mark.asyncio
async def test_concurrent_publishing_reaches_every_subscriber_once_in_order(
    roomy_bus: EventBus,
) -> None:
    """Fast and slow subscribers alike: no gap, no duplicate, no reordering.

    The Redis bus's local ring is tiny, so the slow subscriber moves between
    the ring and the stream's backlog many times.
    """
    bus = roomy_bus
    since = await bus.publish("hosts", {"n": -1})
    count = 120

    async def consume(pause_every: int) -> list[str]:
        ids: list[str] = []
        async with aclosing(bus.subscribe(since=since)) as sub:
            while len(ids) < count:
                event = await receive(sub)
                assert isinstance(event, Event), event
                ids.append(event.id)
                if pause_every and len(ids) % pause_every == 0:
                    await asyncio.sleep(0.01)
        return ids

    async def produce() -> list[str]:
        ids = []
        for n in range(count):
            ids.append(await bus.publish("hosts", {"n": n}))
            if n % 10 == 0:
                await asyncio.sleep(0)
        return ids

    fast, slow, published = await asyncio.gather(consume(0), consume(3), produce())
    assert fast == published
    assert slow == published


@pytest.mark.asyncio
async def test_redis_since_never_issued_inside_the_retained_range_resets(
    redis_clients: tuple[str, list[Redis]],
) -> None:
    """Resuming from an id between two real ones would skip silently: reset instead."""
    prefix, (client, _) = redis_clients
    bus = RedisBus(client, prefix, retention=1000, local_ring=8)
    try:
        async with aclosing(bus.subscribe()) as warm:
            pending = asyncio.ensure_future(receive_events(warm, 6))
            await asyncio.sleep(0.1)  # the reader follows the stream from here on
            ids = []
            for n in range(6):
                ids.append(await bus.publish("hosts", {"n": n}))
                await asyncio.sleep(0.002)  # each id in a millisecond of its own
            await pending
        ms, seq = ids[0].split("-")
        forged = f"{ms}-{int(seq) + 1}"  # between the first two ids
        assert order(ids[0]) < order(forged) < order(ids[1])
        async with aclosing(bus.subscribe(since=forged)) as sub:  # found in the local ring
            assert await receive(sub) == StreamReset(forged)
        for n in range(20):
            await bus.publish("hosts", {"n": n})
        await asyncio.sleep(0.1)
        async with aclosing(bus.subscribe(since=forged)) as sub:  # behind it: the stream
            assert await receive(sub) == StreamReset(forged)
    finally:
        await bus.close()
