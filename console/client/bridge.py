"""The one crossing between the caller's loop and the backend thread's loop.

The embedded backend runs on a plain selector loop in a thread of its own:
psycopg's async mode refuses the proactor loop qasync uses on Windows, and a
slow query there must never stall the window. Everything the console asks of
it crosses here, so panels never see a thread:

- `Bridge.call(coro)` runs a coroutine on the backend loop and awaits its
  result on the caller's loop (the qasync loop in the app). Cancelling the
  awaiting task cancels the coroutine on the backend loop.
- `Bridge.stream(factory)` carries an async iterator (an event stream) across
  through a bounded queue, so a slow reader holds back the producer instead
  of growing memory; cancelling or closing the reader cancels the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

STREAM_QUEUE = 256
"""Items a stream may run ahead of its reader before the producer waits."""


class BridgeClosed(RuntimeError):
    """The backend thread is not running (never started, or stopped)."""


class Bridge:
    """A backend thread running its own asyncio selector loop, and calls into it."""

    def __init__(self, name: str = "quarterdeck-backend") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ended: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None and self._thread is not None and self._thread.is_alive()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise BridgeClosed("the backend thread is not running")
        return self._loop

    async def start(self) -> None:
        """Start the thread; returns once its loop runs, without blocking the caller's loop."""
        if self._thread is not None:
            raise RuntimeError("a bridge starts once")
        caller = asyncio.get_running_loop()
        ready: asyncio.Future[None] = caller.create_future()
        self._ended = caller.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(caller, ready), name=self._name, daemon=True
        )
        self._thread.start()
        await ready

    def _run(self, caller: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            # A selector loop on every OS (see the module docstring).
            with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
                runner.run(self._main(caller, ready))
        finally:
            self._loop = None
            _settle(caller, self._ended)

    async def _main(self, caller: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        _settle(caller, ready)
        await self._stopping.wait()
        # Whatever is still running (a stream nobody closed) is cancelled by
        # the runner on the way out, before the loop closes.

    async def stop(self) -> None:
        """End the loop (cancelling what still runs on it) and wait for the thread to end."""
        loop, stopping, ended = self._loop, self._stopping, self._ended
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopping.set)
        if ended is not None:
            await asyncio.shield(ended)
        if self._thread is not None:
            self._thread.join()  # has returned already: `ended` is set on its way out

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the backend loop; its result or exception comes back here."""
        try:
            loop = self.loop
        except BridgeClosed:
            coro.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        # wrap_future chains cancellation both ways: cancelling this await
        # cancels the task on the backend loop.
        return await asyncio.wrap_future(future)

    def stream(
        self, factory: Callable[[], AsyncIterator[T]], *, maxsize: int = STREAM_QUEUE
    ) -> Stream[T]:
        """An async iterator on the caller's loop over `factory()` iterated on the backend loop.

        `factory` is called on the backend loop (where the iterator's resources
        live) when the stream is first read.
        """
        return Stream(self, factory, maxsize)


def _settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None] | None) -> None:
    """Resolve a caller-loop future from the backend thread, unless that loop is gone."""
    if future is None:
        return

    def settle() -> None:
        if not future.done():
            future.set_result(None)

    with contextlib.suppress(RuntimeError):  # the caller's loop is closed
        loop.call_soon_threadsafe(settle)


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


class Stream(Generic[T]):
    """The caller's end of a stream (see `Bridge.stream`).

    Cancelling a task that waits in `__anext__` closes the stream: the
    producer on the backend loop is cancelled, and the source iterator
    closed there. `aclose()` does the same explicitly; use
    `contextlib.aclosing` so a `break` does not leave the producer waiting.
    """

    def __init__(
        self, bridge: Bridge, factory: Callable[[], AsyncIterator[T]], maxsize: int
    ) -> None:
        self._bridge = bridge
        self._factory = factory
        self._maxsize = maxsize
        self._queue: asyncio.Queue[T | _End] | None = None
        self._producer: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if self._queue is None:
            self._queue = asyncio.Queue(self._maxsize)
            caller = asyncio.get_running_loop()
            try:
                await self._bridge.call(self._start(caller, self._queue))
            except asyncio.CancelledError:
                # Cancelled while starting: the producer may exist already (its
                # answer was on its way back); closing stops it on the backend loop.
                await asyncio.shield(self.aclose())
                raise
        try:
            item = await self._queue.get()
        except asyncio.CancelledError:
            await asyncio.shield(self.aclose())
            raise
        if isinstance(item, _End):
            self._closed = True
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Cancel the producer and wait until the source is closed on the backend loop."""
        self._closed = True
        if self._queue is not None and self._bridge.running:
            with contextlib.suppress(BridgeClosed, RuntimeError):
                await self._bridge.call(self._stop())

    async def _start(
        self, caller: asyncio.AbstractEventLoop, queue: asyncio.Queue[T | _End]
    ) -> None:
        """On the backend loop: start the producer, kept here so `_stop` finds it.

        Both run on the backend loop, in order, so a close that follows a start
        always sees the producer, even when the reader was cancelled before the
        start's answer reached it.
        """
        self._producer = asyncio.create_task(self._produce(caller, queue), name="bridge-stream")

    async def _stop(self) -> None:
        """On the backend loop: cancel the producer, if it started, and wait for it."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await _cancel(producer)

    async def _produce(
        self, caller: asyncio.AbstractEventLoop, queue: asyncio.Queue[T | _End]
    ) -> None:
        """Runs on the backend loop: source → the caller's queue, waiting while it is full."""

        async def hand(item: T | _End) -> None:
            put = asyncio.run_coroutine_threadsafe(queue.put(item), caller)
            await asyncio.wrap_future(put)

        end = _End()
        try:
            source = self._factory()
            try:
                async for item in source:
                    await hand(item)
            finally:
                closer = getattr(source, "aclose", None)
                if closer is not None:
                    await closer()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - handed to the reader, who raises it
            end = _End(error)
        try:
            await hand(end)
        except RuntimeError:  # the caller's loop is closed: nobody is reading
            log.debug("stream ended after its reader's loop closed")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
