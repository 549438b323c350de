"""The contracts every bus back end fulfils (memory.py, redis.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection
from typing import Any, Protocol

from backend.domain.events import Event, StreamReset

BusMessage = Event | StreamReset


class EventBus(Protocol):
    """Ordered, resumable publish/subscribe.

    Every event gets an id that increases across the whole bus. A subscriber
    that passes `since` receives every retained event after that id, then live
    ones; if `since` is older than what is retained it first receives a
    `StreamReset` (and then live events), never a silent gap.
    """

    async def publish(self, topic: str, data: dict[str, Any]) -> str: ...

    def subscribe(
        self, topics: Collection[str] | None = None, since: str | None = None
    ) -> AsyncGenerator[BusMessage, None]: ...

    async def last_id(self) -> str | None:
        """The id of the newest retained event, or None when there is none."""
        ...

    async def ping(self) -> None:
        """Raise when the bus cannot be reached (for readiness checks)."""
        ...

    async def close(self) -> None: ...


class Cache(Protocol):
    """Short-lived shared values (lockout counters, token checks)."""

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl: float) -> int:
        """Add one and return the new count; the key expires `ttl` s after creation."""
        ...


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window: float) -> float:
        """Count one attempt; 0 when allowed, else seconds until one is allowed again."""
        ...

    async def reset(self, key: str) -> None: ...
