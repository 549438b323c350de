"""What every service is built from, and the unit of work they share."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.bus.base import Cache, EventBus, RateLimiter
from backend.domain.events import Topic
from backend.domain.principal import Principal
from backend.services.crypto import Keys
from backend.storage import audit as audit_store
from backend.storage.database import Database


@dataclass(frozen=True, slots=True)
class ServiceContext:
    db: Database
    bus: EventBus
    cache: Cache
    limiter: RateLimiter
    keys: Keys
    clock: Callable[[], float] = time.time


@dataclass(slots=True)
class UnitOfWork:
    """One transaction: the change, its audit entries, and the events to publish.

    Events are only published after the commit succeeded, so a subscriber
    never sees a change that was rolled back.
    """

    session: AsyncSession
    ctx: ServiceContext
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, topic: Topic | str, data: dict[str, Any]) -> None:
        self.events.append((str(topic), data))

    async def audit(
        self,
        principal: Principal,
        action: str,
        target: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        entry = await audit_store.append(
            self.session,
            postgres=self.ctx.db.is_postgres,
            ts=self.ctx.clock(),
            actor=principal.name,
            actor_id=principal.user_id,
            action=action,
            target=target,
            details=details or {},
            source=principal.source,
            correlation_id=principal.correlation_id,
        )
        self.publish(
            Topic.AUDIT,
            {"id": entry.id, "action": action, "actor": principal.name, "target": target},
        )


@contextlib.asynccontextmanager
async def unit_of_work(ctx: ServiceContext) -> AsyncIterator[UnitOfWork]:
    async with ctx.db.transaction() as session:
        uow = UnitOfWork(session=session, ctx=ctx)
        yield uow
    for topic, data in uow.events:
        await ctx.bus.publish(topic, data)


T = TypeVar("T")
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: safe to run again."""


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, DBAPIError) and (
        getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES
    )


async def retry_transient(operation: Callable[[], Awaitable[T]], *, attempts: int = 4) -> T:
    """Run a whole unit of work again when the database aborted it as a deadlock victim.

    Concurrent ingests touching the same hosts and rollup rows can deadlock
    on PostgreSQL; the victim's transaction was rolled back entirely, so
    repeating it is safe and the caller never sees the collision.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except DBAPIError as error:
            if attempt == attempts or not is_retryable(error):
                raise
            await asyncio.sleep(random.uniform(0, 0.02 * attempt))
    raise AssertionError("unreachable")
