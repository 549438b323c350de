"""Keep a list fresh: load it, reload on live events, coalesce bursts into one load.

A panel's table shows a list the client returns whole (`list_users`,
`list_api_keys`…). `ListFeed` owns when it is loaded: once at start, again
shortly after any event of its topics (a burst of ten changes is one
reload, `delay_ms` after the first), again after a stream reset, and when
the panel asks after its own action. A reload asked while one runs is
done once more after it, never in parallel, so an older answer cannot
overwrite a newer one.

It speaks to the panel with signals only: `loading(bool)` for the busy
indicator, `loaded(list)` for the model, `failed(str)` for a message in
place. Expected errors (`QuarterdeckError`) become `failed`; anything else
is a bug and goes to `console.reporting` through `run_async`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from console.asyncslots import run_async
from console.client.errors import QuarterdeckError
from console.client.types import Event, StreamReset
from console.reporting import describe

Loader = Callable[[], Awaitable[Sequence[Any]]]
EventSource = Callable[[], AsyncIterator[Event | StreamReset]]

RELOAD_DELAY_MS = 150
"""How long after an event the reload waits for the rest of its burst."""


class ListFeed(QObject):
    loading = Signal(bool)
    loaded = Signal(object)
    """The fresh list (a `list`), in the client's order."""
    failed = Signal(str)
    """A sentence for the person: why the list could not be loaded or followed."""

    def __init__(
        self,
        load: Loader,
        owner: QWidget,
        *,
        what: str,
        events: EventSource | None = None,
        delay_ms: int = RELOAD_DELAY_MS,
    ) -> None:
        super().__init__(owner)
        self._load = load
        self._events = events
        self._owner = owner
        self._what = what
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._fire)
        self._loading: asyncio.Task[None] | None = None
        self._again = False
        self._following: asyncio.Task[None] | None = None
        self._stopped = False
        self.loads = 0
        """Loads completed, for tests and diagnostics."""

    @property
    def busy(self) -> bool:
        return self._loading is not None and not self._loading.done()

    def start(self) -> None:
        """Load now and follow the events (if any)."""
        self._stopped = False
        self._fire()
        if self._events is not None and self._following is None:
            self._following = run_async(
                self._follow(self._events), parent=self._owner, on_error=self._stream_failed
            )

    def reload(self) -> None:
        """Ask for a reload soon; requests that come together are one load."""
        if not self._stopped and not self._timer.isActive():
            self._timer.start()

    async def stop(self) -> None:
        """Stop following and loading (the panel's shutdown); nothing restarts by itself."""
        self._stopped = True
        self._timer.stop()
        tasks = [task for task in (self._following, self._loading) if task is not None]
        self._following = self._loading = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- inside -------------------------------------------------------------------------

    def _fire(self) -> None:
        if self._stopped:
            return
        if self.busy:
            self._again = True
            return
        self._loading = run_async(self._run_load(), parent=self._owner, what=f"load {self._what}")

    async def _run_load(self) -> None:
        self.loading.emit(True)
        try:
            records = await self._load()
        except QuarterdeckError as error:
            self.failed.emit(f"Could not load {self._what}: {describe(error)}")
            return
        finally:
            self.loading.emit(False)
            if self._again:
                self._again = False
                self.reload()
        self.loads += 1
        self.loaded.emit(list(records))

    async def _follow(self, source: EventSource) -> None:
        async for _message in source():
            # An event or a reset: either way the list is reloaded (coalesced).
            self.reload()

    def _stream_failed(self, error: BaseException) -> bool:
        if isinstance(error, QuarterdeckError):
            self.failed.emit(f"Live updates of {self._what} stopped: {describe(error)}")
            return True
        return False
