"""Periodic background work, with errors logged instead of lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Interval = Callable[[], Awaitable[float]] | float
"""Seconds between runs, or a coroutine asked before each wait (a live setting)."""


class Jobs:
    """Owns the background tasks of one core; `stop()` cancels and awaits them all."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def every(self, name: str, interval: Interval, job: Callable[[], Awaitable[object]]) -> None:
        self._tasks.append(asyncio.create_task(self._loop(name, interval, job), name=f"job:{name}"))

    def run(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """A long-running job (a collector loop) that handles its own timing."""
        self._tasks.append(asyncio.create_task(self._guard(name, job), name=f"job:{name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @staticmethod
    async def _guard(name: str, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s stopped with an error", name)

    @staticmethod
    async def _loop(name: str, interval: Interval, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                # One failed run (a database restart) must not end the schedule.
                log.exception("job %s failed; it runs again at its next interval", name)
            try:
                wait = interval if isinstance(interval, float | int) else await interval()
            except Exception:
                log.exception("job %s could not read its interval; waiting 60 s", name)
                wait = 60.0
            await asyncio.sleep(wait)
