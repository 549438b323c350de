"""A per-principal request budget for the HTTP API.

Sign-in has its own limits (per address, per account, in `AuthService`);
this one bounds what a signed-in user or API key may ask of the server, so a
runaway script or a leaked key cannot starve everyone else. The count lives
in the bus's rate limiter: Redis when configured, so the budget holds across
every server instance behind the load balancer, not per process.

The limit is the run-time setting `api.requests_per_minute` (0: unlimited),
read at most every `LIMIT_TTL` seconds, so a request costs one limiter round
trip and no database read. The window is fixed (one minute from the first
request); a burst straddling two windows may reach twice the limit, which is
acceptable for a guard against abuse and keeps the check one atomic step.

`get_principal` (backend/api/deps.py) calls `charge_request` after
authenticating, so every authenticated route is covered. The event
WebSocket authenticates on its own and is not charged: it is one long
request, not many.

When the limiter cannot be reached (Redis down) the request fails with 503
rather than going unmetered: the deployment is unavailable then anyway
(/readyz says so, sign-in needs Redis too), and a budget that silently
lapses whenever Redis blinks would be no budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import HTTPConnection

from backend.core import Core
from backend.domain.errors import RateLimited
from backend.domain.principal import Principal

SETTING = "api.requests_per_minute"
WINDOW = 60.0
"""Seconds per budget window; the setting is per minute."""
LIMIT_TTL = 5.0
"""Seconds a read of the setting is reused: a change applies within this delay."""


def budget_key(principal: Principal) -> str:
    """One budget per user (all their sessions together) or per API key."""
    if principal.kind == "api_key":
        return f"api:key:{principal.api_key_id}"
    who = principal.user_id if principal.user_id is not None else principal.name
    return f"api:{principal.kind}:{who}"


class RequestBudget:
    """The limiter check plus a short-lived copy of the limit, for one core."""

    def __init__(
        self,
        core: Core,
        *,
        ttl: float = LIMIT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = core
        self._ttl = ttl
        self._clock = clock
        self._limit: int | None = None
        self._read_at = 0.0
        self._reading = False

    @property
    def core(self) -> Core:
        return self._core

    async def limit(self) -> int:
        """The current limit, from the setting at most `ttl` seconds old.

        One request at a time re-reads an expired value; those arriving
        meanwhile use the previous one rather than all reading the database
        at once (a burst of reads every `ttl` seconds under load).
        """
        now = self._clock()
        limit = self._limit
        if limit is not None and (self._reading or now - self._read_at < self._ttl):
            return limit
        self._reading = True
        try:
            limit = int(await self._core.settings.value(SETTING))
        finally:
            self._reading = False
        self._limit, self._read_at = limit, now
        return limit

    async def charge(self, principal: Principal) -> None:
        """Count one request; `RateLimited` (429 + Retry-After) when over budget."""
        limit = await self.limit()
        if limit <= 0:
            return
        retry = await self._core.ctx.limiter.hit(budget_key(principal), limit=limit, window=WINDOW)
        if retry:
            raise RateLimited(
                f"too many requests: at most {limit} per minute; slow down",
                retry_after=retry,
                details={"limit": limit, "window_seconds": WINDOW},
            )


def budget_for(connection: HTTPConnection, core: Core) -> RequestBudget:
    """The app's budget, made on first use (one per app, hence per core)."""
    state = connection.app.state
    budget: RequestBudget | None = getattr(state, "request_budget", None)
    if budget is None or budget.core is not core:
        budget = RequestBudget(core)
        state.request_budget = budget
    return budget


async def charge_request(connection: HTTPConnection, core: Core, principal: Principal) -> None:
    """Charge one request to `principal`'s budget; the hook `get_principal` calls."""
    await budget_for(connection, core).charge(principal)
