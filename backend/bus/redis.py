"""Redis back ends: every server instance shares one event stream, cache and limiter."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Collection
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from backend.bus.base import BusMessage
from backend.domain.events import Event, StreamReset

_BLOCK_MS = 1000
"""How long one XREAD waits, which bounds how late a subscriber notices `close()`."""
_BATCH = 100

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
    return [
        (_text(entry_id), {_text(k): _text(v) for k, v in (fields or {}).items()})
        for batch in streams
        for entry_id, fields in batch
    ]


class RedisBus:
    """One stream for all topics, so ids are ordered across the whole bus."""

    def __init__(self, client: Redis, prefix: str, retention: int) -> None:
        self._client = client
        self._key = f"{prefix}events"
        self._retention = retention
        self._publish = client.register_script(_PUBLISH)
        self._closed = False

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        args: list[str | int] = [self._retention, topic, repr(time.time()), json.dumps(data)]
        return _text(await self._publish(keys=[self._key], args=args))

    async def last_id(self) -> str | None:
        newest = await self._client.xrevrange(self._key, "+", "-", count=1)
        return _text(newest[0][0]) if newest else None

    async def _end(self) -> tuple[str, tuple[int, int]]:
        newest = await self.last_id() or "0-0"
        return newest, _parse_id(newest) or (0, 0)

    async def subscribe(
        self, topics: Collection[str] | None = None, since: str | None = None
    ) -> AsyncGenerator[BusMessage, None]:
        wanted = frozenset(topics) if topics is not None else None
        cursor, position = await self._end()
        if since is not None:
            asked = _parse_id(since)
            # Ahead of the newest id means the stream was recreated: stale too.
            if asked is None or asked > position:
                yield StreamReset(since)
            else:
                cursor, position = f"{asked[0]}-{asked[1]}", asked
        while not self._closed:
            try:
                reply = await self._client.xread({self._key: cursor}, count=_BATCH, block=_BLOCK_MS)
            except RedisConnectionError:
                if self._closed:
                    return
                raise
            for entry_id, fields in _entries(reply):
                if _parse_id(fields.get("prev", "")) != position:
                    # Entries after `cursor` were trimmed: resume from now, the
                    # client reloads state. Read the end before telling it.
                    lost = cursor
                    cursor, position = await self._end()
                    yield StreamReset(lost)
                    break
                cursor, position = entry_id, _parse_id(entry_id) or position
                if wanted is None or fields["topic"] in wanted:
                    yield Event(
                        id=entry_id,
                        topic=fields["topic"],
                        ts=float(fields["ts"]),
                        data=json.loads(fields["data"]),
                    )

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        """Stops subscribers; the client belongs to whoever opened it (see factory)."""
        self._closed = True


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
