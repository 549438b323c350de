"""Single-process bus, cache and rate limiter: no Redis needed for one server."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncGenerator, Collection
from typing import Any

from backend.bus.base import BusMessage
from backend.domain.events import Event, StreamReset

_SWEEP_INTERVAL = 60.0
"""Seconds between purges of expired keys, so keys nobody reads again don't pile up."""


def _parse_id(event_id: str) -> int | None:
    """None for ids this bus never issued (e.g. a Redis id after a switch of back end)."""
    return int(event_id) if event_id.isdecimal() else None


class MemoryBus:
    """A ring of the last `retention` events that subscribers read by position.

    Reading by position (rather than one queue per subscriber) keeps memory
    bounded however slow a subscriber is: one that falls behind the ring gets
    a `StreamReset` instead of holding events hostage.
    """

    def __init__(self, retention: int) -> None:
        if retention < 1:
            raise ValueError("retention must be at least 1")
        self._ring: deque[Event] = deque(maxlen=retention)
        self._last = 0
        self._wakeup = asyncio.Event()
        self._closed = False

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        # A JSON round trip accepts and delivers exactly what the Redis bus would,
        # and no subscriber sees a publisher's later mutations.
        payload: dict[str, Any] = json.loads(json.dumps(data))
        self._last += 1
        event = Event(id=str(self._last), topic=topic, ts=time.time(), data=payload)
        self._ring.append(event)
        # Swap the event before setting it: waiters already hold the old one.
        wakeup, self._wakeup = self._wakeup, asyncio.Event()
        wakeup.set()
        return event.id

    def _start(self, since: str | None) -> tuple[int, bool]:
        """Where a new subscriber starts, and whether it must be told to reload."""
        if since is None:
            return self._last, False
        position = _parse_id(since)
        oldest = self._last - len(self._ring) + 1
        # Ahead of the newest id means it came from an earlier process: stale too.
        if position is None or position < oldest - 1 or position > self._last:
            return self._last, True
        return position, False

    async def subscribe(
        self, topics: Collection[str] | None = None, since: str | None = None
    ) -> AsyncGenerator[BusMessage, None]:
        wanted = frozenset(topics) if topics is not None else None
        position, reset = self._start(since)
        if reset:
            yield StreamReset(since)
        while not self._closed:
            if position >= self._last:
                await self._wakeup.wait()
                continue
            oldest = self._last - len(self._ring) + 1
            if position < oldest - 1:
                # Fell behind the ring: resume from now, the client reloads state.
                lost, position = position, self._last
                yield StreamReset(str(lost))
                continue
            event = self._ring[position - oldest + 1]
            position += 1
            if wanted is None or event.topic in wanted:
                yield event

    async def last_id(self) -> str | None:
        return self._ring[-1].id if self._ring else None

    async def ping(self) -> None:
        if self._closed:
            raise RuntimeError("bus is closed")

    async def close(self) -> None:
        self._closed = True
        self._wakeup.set()


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
