"""Single-process bus, cache and rate limiter: no Redis needed for one server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Collection
from contextlib import aclosing
from typing import Any

from backend.bus.base import BusMessage
from backend.bus.ring import Cursor, Ring
from backend.domain.events import Event, StreamReset

_SWEEP_INTERVAL = 60.0
"""Seconds between purges of expired keys, so keys nobody reads again don't pile up."""


def _order(event_id: str) -> tuple[int, ...] | None:
    """None for ids this bus never issued (e.g. a Redis id after a switch of back end)."""
    return (int(event_id),) if event_id.isdecimal() else None


class MemoryBus:
    """Events numbered 1, 2, 3 ... in a ring of the last `retention` (see ring.py)."""

    def __init__(self, retention: int) -> None:
        if retention < 1:
            raise ValueError("retention must be at least 1")
        self._ring = Ring(retention, "0", _order)
        self._last = 0

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        # A JSON round trip accepts and delivers exactly what the Redis bus would,
        # and no subscriber sees a publisher's later mutations.
        payload: dict[str, Any] = json.loads(json.dumps(data))
        self._last += 1
        event = Event(id=str(self._last), topic=topic, ts=time.time(), data=payload)
        self._ring.append(event, (self._last,))
        return event.id

    async def subscribe(
        self, topics: Collection[str] | None = None, since: str | None = None
    ) -> AsyncGenerator[BusMessage, None]:
        wanted = frozenset(topics) if topics is not None else None
        ring = self._ring
        cursor = ring.at_end()
        if since is not None:
            position = ring.locate(since)
            if position is None:
                # Older than the ring, or ahead of the newest id (from an earlier
                # process): either way the client must reload.
                yield StreamReset(since)
            else:
                cursor = Cursor(position, since)
        while not ring.closed:
            async with aclosing(ring.follow(cursor, wanted)) as events:
                async for message in events:
                    yield message
            if not ring.closed:
                # Fell behind the ring: resume from now, the client reloads state.
                lost, cursor = cursor.last_id, ring.at_end()
                yield StreamReset(lost)

    async def last_id(self) -> str | None:
        return str(self._last) if self._last else None

    async def ping(self) -> None:
        if self._ring.closed:
            raise RuntimeError("bus is closed")

    async def close(self) -> None:
        self._ring.close()


class _Expiring:
    """Expiry by time.monotonic, so wall-clock jumps neither extend nor cut TTLs."""

    def __init__(self) -> None:
        self._next_sweep = time.monotonic() + _SWEEP_INTERVAL

    def _sweep(self, entries: dict[str, Any], now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL
        for key in [k for k, entry in entries.items() if entry[1] <= now]:
            del entries[key]


class MemoryCache(_Expiring):
    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, tuple[str, float]] = {}

    def _live(self, key: str, now: float) -> tuple[str, float] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[1] <= now:
            del self._entries[key]
            return None
        return entry

    async def get(self, key: str) -> str | None:
        entry = self._live(key, time.monotonic())
        return entry[0] if entry else None

    async def set(self, key: str, value: str, ttl: float) -> None:
        now = time.monotonic()
        self._sweep(self._entries, now)
        self._entries[key] = (value, now + ttl)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def incr(self, key: str, ttl: float) -> int:
        now = time.monotonic()
        self._sweep(self._entries, now)
        entry = self._live(key, now)
        count, expires = (int(entry[0]) + 1, entry[1]) if entry else (1, now + ttl)
        self._entries[key] = (str(count), expires)
        return count


class MemoryRateLimiter(_Expiring):
    """Fixed window per key, matching the Redis limiter's behaviour."""

    def __init__(self) -> None:
        super().__init__()
        self._windows: dict[str, tuple[int, float]] = {}

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        now = time.monotonic()
        self._sweep(self._windows, now)
        count, ends = self._windows.get(key, (0, now))
        if ends <= now:
            count, ends = 0, now + window
        count += 1
        self._windows[key] = (count, ends)
        return 0.0 if count <= limit else ends - now

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)
