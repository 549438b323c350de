"""One call at a time per key, its outcome shared by the callers that arrive meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Abandoned(Exception):
    """The caller running the call was cancelled: a waiter runs it again."""


class SharedCall(Generic[T]):
    """Coalesces concurrent calls: a burst of requests that all find a cache
    expired costs one database read (or one Redis round trip), not one each.

    The first caller for a key runs the call itself, in its own task, rather
    than in a task of its own making: when that caller is cancelled (a
    client gone, a job stopped, a loop closing) nothing is left running
    with a connection in hand. A waiter then runs the call again; an error
    is raised to every waiter, as to the caller.
    """

    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Future[T]] = {}

    async def __call__(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        while True:
            running = self._calls.get(key)
            if running is None:
                break
            try:
                # Shielded: a waiter that is cancelled must not cancel the shared outcome.
                return await asyncio.shield(running)
            except _Abandoned:
                continue
        outcome: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls[key] = outcome
        try:
            result = await call()
        except BaseException as error:
            outcome.set_exception(error if isinstance(error, Exception) else _Abandoned())
            outcome.exception()  # retrieved: there may be no waiter to raise it to
            raise
        finally:
            if self._calls.get(key) is outcome:
                del self._calls[key]
        outcome.set_result(result)
        return result
