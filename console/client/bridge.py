"""The one crossing between the caller's loop and the backend thread's loop.

The embedded backend runs on a plain selector loop in a thread of its own:
psycopg's async mode refuses the proactor loop qasync uses on Windows, and a
slow query there must never stall the window. Everything the console asks of
it crosses here, so panels never see a thread:

- `Bridge.call(coro)` runs a coroutine on the backend loop and awaits its
  result on the caller's loop (the qasync loop in the app). Cancelling the
  awaiting task cancels the coroutine on the backend loop, once, and the
  cancellation completes when that coroutine has ended there: a cancelled
  call leaves nothing running behind the caller's back.
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
    """A backend thread running its own asyncio selector loop, and calls into it.

    Why a cancelled call is waited for, and never cancelled twice: a query
    cancelled while aiosqlite runs it makes SQLAlchemy close that connection
    gracefully, which waits for the query to end. Cancelled a second time
    meanwhile (the runner used to do it when the loop stopped), SQLAlchemy
    stops aiosqlite's worker thread too, and aiosqlite's close then waits
    forever for a thread that has gone (aiosqlite 0.22: `close()` after
    `stop()` never returns), so `LocalClient.close` hung. Hence: one
    cancellation per call, the caller's cancellation returns only once the
    call has ended, and `cancel_calls`/`stop` wait for the calls in flight
    before the core closes or the loop ends.
    """

    def __init__(self, name: str = "quarterdeck-backend") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ended: asyncio.Future[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        """Calls running on the backend loop (touched there only)."""
        self._pending: set[_Call[Any]] = set()
        """Calls whose outcome the caller's loop still awaits (touched there only)."""

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
            # After every outcome the loop reported: calls that never started fail.
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                caller.call_soon_threadsafe(self._abandon_pending)
            _settle(caller, self._ended)

    async def _main(self, caller: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        _settle(caller, ready)
        await self._stopping.wait()
        # Calls still in flight end here, each cancelled once (see the class
        # docstring). Whatever else still runs (a stream nobody closed) is
        # cancelled by the runner on the way out, before the loop closes.
        await self._cancel_running()

    def _abandon_pending(self) -> None:
        """On the caller's loop, once the backend loop is gone: fail the calls it never ran."""
        for call in list(self._pending):
            call.abandon()

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
        """Run `coro` on the backend loop; its result or exception comes back here.

        Cancelled, it cancels `coro` on the backend loop (once, however often
        it is cancelled itself) and raises `CancelledError` only when `coro`
        has ended there. `BridgeClosed` if the backend loop stopped first.
        """
        try:
            loop = self.loop
        except BridgeClosed:
            coro.close()
            raise
        call = _Call(self, coro, asyncio.get_running_loop())
        try:
            loop.call_soon_threadsafe(call.start)
        except RuntimeError:  # the loop closed meanwhile
            coro.close()
            raise BridgeClosed("the backend thread is not running") from None
        self._pending.add(call)
        call.outcome.add_done_callback(lambda _: self._pending.discard(call))
        try:
            return await asyncio.shield(call.outcome)
        except asyncio.CancelledError:
            with contextlib.suppress(RuntimeError):  # the loop closed: the call has ended
                loop.call_soon_threadsafe(call.cancel)
            await call.ended()
            raise

    async def cancel_calls(self) -> None:
        """Cancel the calls in flight, each once, and wait until they have ended.

        For a closing client: the core must not close under a call that is
        still running (or still unwinding from a cancellation) on its loop.
        """
        if self.running:
            with contextlib.suppress(BridgeClosed):
                await self.call(self._cancel_running())

    async def _cancel_running(self) -> None:
        """On the backend loop: cancel every other call not yet cancelled, and wait for all."""
        current = asyncio.current_task()
        running = [task for task in self._running if task is not current]
        for task in running:
            if not task.cancelling():  # a second cancellation is what hangs (class docstring)
                task.cancel()
        if running:
            await asyncio.wait(running)

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


class _Call(Generic[T]):
    """One `Bridge.call`: its task on the backend loop, its outcome on the caller's."""

    def __init__(
        self, bridge: Bridge, coro: Coroutine[Any, Any, T], caller: asyncio.AbstractEventLoop
    ) -> None:
        self._bridge = bridge
        self._coro: Coroutine[Any, Any, T] | None = coro
        self._caller = caller
        self._task: asyncio.Task[T] | None = None
        self.outcome: asyncio.Future[T] = caller.create_future()

    def start(self) -> None:
        """On the backend loop (scheduled before `cancel`, so it always runs first)."""
        coro, self._coro = self._coro, None
        if coro is None:  # abandoned meanwhile
            return
        task = asyncio.get_running_loop().create_task(coro, name="bridge-call")
        self._task = task
        self._bridge._running.add(task)
        task.add_done_callback(self._ended)

    def cancel(self) -> None:
        """On the backend loop: cancel the task, unless it has ended or is being cancelled."""
        task = self._task
        if task is not None and not task.done() and not task.cancelling():
            task.cancel()

    def _ended(self, task: asyncio.Task[T]) -> None:
        self._bridge._running.discard(task)
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
            self._caller.call_soon_threadsafe(self._report, task)

    def _report(self, task: asyncio.Task[T]) -> None:
        """On the caller's loop: the task's ending becomes the outcome."""
        if self.outcome.done():
            return
        if task.cancelled():
            # Not by the caller (whose cancellation is raised anyway): by the loop stopping.
            self.outcome.set_exception(BridgeClosed("the backend stopped before the call ended"))
        elif (error := task.exception()) is not None:
            self.outcome.set_exception(error)
        else:
            self.outcome.set_result(task.result())

    def abandon(self) -> None:
        """On the caller's loop, the backend loop gone: a call it never started fails."""
        coro, self._coro = self._coro, None
        if coro is not None:
            coro.close()
        if not self.outcome.done():
            self.outcome.set_exception(BridgeClosed("the backend stopped before the call ran"))

    async def ended(self) -> None:
        """Wait for the outcome, whatever it is, through any further cancellation.

        The caller is being cancelled: the outcome is only retrieved, so that
        an error does not go unreported as never retrieved.
        """
        while not self.outcome.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([self.outcome])
        if not self.outcome.cancelled():
            self.outcome.exception()


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
