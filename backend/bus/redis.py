"""Redis back ends: every server instance shares one event stream, cache and limiter."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Collection
from contextlib import aclosing
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.bus.base import BusMessage
from backend.bus.ring import Cursor, Ring
from backend.domain.events import Event, StreamReset

log = logging.getLogger(__name__)

LOCAL_RING = 1024
"""Events each process keeps decoded for its subscribers. Smaller than the
stream's retention is fine (a subscriber further back reads the stream), and
metrics events can be large."""
_BLOCK_MS = 2000
"""How long the shared reader's XREAD waits for new entries before asking again."""
_READ_TIMEOUT = _BLOCK_MS / 1000 + 5.0
"""A reply later than this means the connection died without a word: reconnect."""
_READ_BATCH = 1000
_BACKLOG_BATCH = 500
"""Entries per XRANGE while a subscriber replays what the local ring no longer
holds: bounds what one catching-up subscriber holds in memory."""
_RETRY_FIRST, _RETRY_MAX = 0.1, 5.0
"""Seconds before the reader retries after a Redis error, doubling up to the max."""
_ORIGIN = "0-0"
"""The id before the first entry of a stream (what `prev` says for the first one)."""

# Each entry records the id of the entry before it, atomically (hence Lua), so a
# reader can tell a gap from trimming: Redis 7 leaves max-deleted-entry-id alone
# when MAXLEN trims, so XINFO cannot tell us.
_PUBLISH = """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if #newest > 0 then prev = newest[1][1] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
    'topic', ARGV[2], 'ts', ARGV[3], 'data', ARGV[4], 'prev', prev)
"""

# Counter and its expiry in one step, so a crash between them cannot leave a
# counter that never expires.
_INCR = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""

_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
end
if count <= tonumber(ARGV[1]) then return 0 end
return math.max(ttl, 1)
"""


def _ms(seconds: float) -> int:
    """Redis rejects a zero or negative expiry, so round up to at least 1 ms."""
    return max(1, round(seconds * 1000))


def _text(value: bytes | str | None) -> str:
    """redis-py types replies as bytes or str; the client always decodes them."""
    if isinstance(value, bytes):
        return value.decode()
    return value or ""


def _parse_id(stream_id: str) -> tuple[int, int] | None:
    """Stream ids order as (ms, seq) integers, not as strings."""
    ms, _, seq = stream_id.partition("-")
    if not ms.isdecimal() or not (seq.isdecimal() or seq == ""):
        return None
    return int(ms), int(seq or 0)


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """Flatten an XREAD reply for one stream, in RESP2 (list) or RESP3 (dict) shape."""
    streams = reply.values() if isinstance(reply, dict) else [s[1] for s in reply or []]
    return [entry for batch in streams for entry in _range_entries(batch)]


def _range_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """Entries of an XRANGE reply (or of one stream in an XREAD reply)."""
    return [
        (_text(entry_id), {_text(k): _text(v) for k, v in (fields or {}).items()})
        for entry_id, fields in reply or []
    ]


def _event(entry_id: str, fields: dict[str, str]) -> Event:
    return Event(
        id=entry_id,
        topic=fields["topic"],
        ts=float(fields["ts"]),
        data=json.loads(fields["data"]),
    )


def _next_event(entry_id: str, fields: dict[str, str], after: str) -> Event | None:
    """The entry as an event if it directly follows `after` (and is well formed)."""
    if _parse_id(fields.get("prev", "")) != _parse_id(after):
        return None
    try:
        return _event(entry_id, fields)
    except (KeyError, ValueError):
        return None


class RedisBus:
    """One stream for all topics, so ids are ordered across the whole bus.

    A single reader task per process follows the stream (XREAD BLOCK) into a
    local ring that every subscriber of this process reads, so a hundred
    WebSocket clients cost one Redis connection rather than a hundred. A
    subscriber further back than the ring replays from the stream (XRANGE) in
    bounded batches, then joins the ring, without gap or duplicate.
    """

    def __init__(
        self, client: Redis, prefix: str, retention: int, *, local_ring: int = LOCAL_RING
    ) -> None:
        self._client = client
        self._key = f"{prefix}events"
        self._retention = retention
        self._ring_size = max(1, min(retention, local_ring))
        self._publish = client.register_script(_PUBLISH)
        self._ring: Ring | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._closed = False

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        args: list[str | int] = [self._retention, topic, repr(time.time()), json.dumps(data)]
        return _text(await self._publish(keys=[self._key], args=args))

    async def last_id(self) -> str | None:
        newest = await self._client.xrevrange(self._key, "+", "-", count=1)
        return _text(newest[0][0]) if newest else None

    async def _local_ring(self) -> Ring:
        """The ring, starting its reader at the stream's newest entry on first use."""
        async with self._starting:
            if self._ring is None:
                start = await self.last_id() or _ORIGIN
                self._ring = Ring(self._ring_size, start, _parse_id)
                if self._closed:
                    self._ring.close()
                else:
                    self._reader = asyncio.create_task(
                        self._follow_stream(self._ring, start), name=f"bus-reader:{self._key}"
                    )
            return self._ring

    async def _follow_stream(self, ring: Ring, cursor: str) -> None:
        """Copy every new stream entry into the ring, marking gaps, until cancelled.

        Redis errors do not end it: subscribers would wait forever. It retries,
        and if the stream was trimmed past its cursor meanwhile, the `prev`
        chain shows the gap and subscribers get a reset instead of a hole.
        """
        position = _parse_id(cursor)
        delay = _RETRY_FIRST
        gap = False
        while not self._closed:
            try:
                async with asyncio.timeout(_READ_TIMEOUT):
                    reply = await self._client.xread(
                        {self._key: cursor}, count=_READ_BATCH, block=_BLOCK_MS
                    )
            except (RedisError, TimeoutError, OSError) as error:
                task = asyncio.current_task()
                if self._closed or (task is not None and task.cancelling()):
                    return  # redis-py may turn our cancellation into its own error
                log.warning("reading the event stream failed (%s); retry in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            delay = _RETRY_FIRST
            for entry_id, fields in _entries(reply):
                order = _parse_id(entry_id)
                assert order is not None
                gap = gap or _parse_id(fields.get("prev", "")) != position
                cursor, position = entry_id, order
                try:
                    event = _event(entry_id, fields)
                except (KeyError, ValueError):
                    # Not ours (only the Lua script writes here); readers get a reset.
                    log.exception("skipping malformed event stream entry %s", entry_id)
                    gap = True
                    continue
                ring.append(event, order, gap_before=gap)
                gap = False

    async def _replay(self, after: str) -> list[tuple[str, dict[str, str]]]:
        """The next bounded batch of stream entries after `after` (an id of this stream)."""
        order = _parse_id(after)
        assert order is not None
        start = f"({order[0]}-{order[1]}"
        reply = await self._client.xrange(self._key, start, "+", count=_BACKLOG_BATCH)
        return _range_entries(reply)

    async def _issued(self, order: tuple[int, int]) -> bool:
        """Whether the stream has reached this id (if it is ahead of our reader)."""
        newest = await self.last_id()
        newest_order = _parse_id(newest) if newest else None
        return newest_order is not None and order <= newest_order

    async def subscribe(
        self, topics: Collection[str] | None = None, since: str | None = None
    ) -> AsyncGenerator[BusMessage, None]:
        wanted = frozenset(topics) if topics is not None else None
        ring = await self._local_ring()
        if since is None:
            # From the stream's newest rather than the ring's: the reader may lag.
            since = await self.last_id() or _ORIGIN
        cursor = Cursor(ring.end, since)
        while not ring.closed:
            assert cursor.last_id is not None
            position = ring.locate(cursor.last_id)
            if position is not None:
                cursor.position = position
                async with aclosing(ring.follow(cursor, wanted)) as events:
                    async for message in events:
                        yield message
                continue  # closed, or fell behind the ring: try the stream
            asked = _parse_id(cursor.last_id)
            if asked is not None and asked < ring.base:
                batch = await self._replay(cursor.last_id)
                # Empty although the ring holds newer entries: the stream was replaced.
                chained = bool(batch)
                for entry_id, fields in batch:
                    event = _next_event(entry_id, fields, cursor.last_id)
                    if event is None:
                        chained = False  # trimmed meanwhile, or never an id of this stream
                        break
                    cursor.last_id = entry_id
                    if wanted is None or event.topic in wanted:
                        yield event
                if chained:
                    continue
            elif asked is not None and asked > ring.newest:
                end = ring.end
                if await self._issued(asked):
                    await ring.grown(end)  # our reader has not got there yet
                    continue
            # Not retained here or in the stream, or never issued by it: start
            # from now (the stream's newest: the ring's reader may lag) and tell
            # the client to reload state, which covers everything up to now.
            lost = cursor.last_id
            cursor = Cursor(ring.end, await self.last_id() or _ORIGIN)
            yield StreamReset(lost)

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        """Stops subscribers and the reader; the client belongs to its opener (see factory)."""
        self._closed = True
        async with self._starting:
            if self._ring is not None:
                self._ring.close()
            reader, self._reader = self._reader, None
        # Cancel until it ends: on Python 3.11, asyncio.wait_for (which redis-py
        # uses while connecting) can swallow a cancellation.
        while reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait({reader}, timeout=0.05)
        if reader is not None and not reader.cancelled() and reader.exception() is not None:
            log.error("the event stream reader failed", exc_info=reader.exception())


class RedisCache:
    def __init__(self, client: Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}cache:"
        self._incr = client.register_script(_INCR)

    async def get(self, key: str) -> str | None:
        value = await self._client.get(self._prefix + key)
        return None if value is None else _text(value)

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self._client.set(self._prefix + key, value, px=_ms(ttl))

    async def delete(self, key: str) -> None:
        await self._client.delete(self._prefix + key)

    async def incr(self, key: str, ttl: float) -> int:
        return int(await self._incr(keys=[self._prefix + key], args=[_ms(ttl)]))


class RedisRateLimiter:
    """Fixed window counter shared by all instances; retry-after comes from PTTL."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}rate:"
        self._hit = client.register_script(_HIT)

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        ttl_ms = await self._hit(keys=[self._prefix + key], args=[limit, _ms(window)])
        return int(ttl_ms) / 1000

    async def reset(self, key: str) -> None:
        await self._client.delete(self._prefix + key)
