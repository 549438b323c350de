"""Pick the back ends once at startup: memory for a single process, Redis for many.

redis-py is imported only when a Redis URL is configured: it is a fifth of
a second of the embedded console's start-up otherwise spent for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.bus.base import Cache, EventBus, RateLimiter
from backend.bus.memory import MemoryBus, MemoryCache, MemoryRateLimiter

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class BusBundle:
    """The three share one Redis client, so they are opened and closed together."""

    bus: EventBus
    cache: Cache
    limiter: RateLimiter
    client: Redis | None = None

    async def close(self) -> None:
        await self.bus.close()
        if self.client is not None:
            await self.client.aclose()


async def open_bus(redis_url: str | None, prefix: str, retention: int) -> BusBundle:
    """Fail at startup, not on the first request, when Redis is unreachable."""
    if redis_url is None:
        return BusBundle(MemoryBus(retention), MemoryCache(), MemoryRateLimiter())
    from redis.asyncio import Redis  # noqa: PLC0415 - only when configured (module doc)

    from backend.bus.redis import RedisBus, RedisCache, RedisRateLimiter  # noqa: PLC0415

    client = Redis.from_url(
        redis_url,
        decode_responses=True,
        # Explicit, whatever the redis-py version's defaults: a hung Redis
        # turns into a 503 within seconds instead of a request that never ends.
        # The stream reader's XREAD blocks for less than the socket timeout.
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
    )
    try:
        await client.ping()
    except BaseException:
        await client.aclose()
        raise
    return BusBundle(
        RedisBus(client, prefix, retention),
        RedisCache(client, prefix),
        RedisRateLimiter(client, prefix),
        client,
    )
