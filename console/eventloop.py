"""The asyncio loop the console runs on: qasync's, with its callbacks always inside it.

qasync's `QEventLoop` dispatches every callback (task steps, timers, socket
readiness) from Qt timer events. Qt delivers those events whenever *any*
code processes events, and qasync itself does so once more at the end of
`run_until_complete`, after it has already cleared the running loop. A task
step delivered then runs with no running loop: `asyncio.get_running_loop()`
raises "no running event loop", `asyncio.current_task()` too, and so does
everything built on them. httpx (through anyio's backend detection) then
fails with `NoEventLoopError`, and the task (a client's latency pinger, a
request in flight) dies with an error nobody expects; `RemoteClient.close()`
awaiting that pinger re-raised it, which is how it surfaced, as a rare error
at a contract test's teardown.

`QtLoop` runs each callback with itself as the running loop, as every
asyncio loop does, whoever happens to be processing Qt events at that
moment. Nothing else about qasync changes.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable
from typing import Any

import qasync


class QtLoop(qasync.QEventLoop):  # type: ignore[misc]  # qasync is untyped
    """qasync's loop, whose callbacks always see it as the running loop (see the module doc)."""

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        # call_soon, call_at and call_soon_threadsafe all end up here, and so do
        # qasync's socket notifiers, so this covers every callback of the loop.
        if inspect.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with call_later")
        handle: asyncio.Handle = super().call_later(
            delay, self._inside, callback, *args, context=context
        )
        return handle

    def _inside(self, callback: Callable[..., object], *args: Any) -> None:
        """Run `callback` with this loop as the running one, then restore what was."""
        outer = asyncio._get_running_loop()
        if outer is self:
            callback(*args)
            return
        # For loop implementations (asyncio's documented use of these two).
        asyncio._set_running_loop(self)
        try:
            callback(*args)
        finally:
            asyncio._set_running_loop(outer)
