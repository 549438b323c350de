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
- `Bridge.stream(open_)` carries an async iterator (an event stream) across
  through a bounded queue, so a slow reader holds back the producer instead
  of growing memory; cancelling or closing the reader cancels the producer.
  The source is opened as soon as the stream is made, not at its first read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

STREAM_QUEUE = 256
"""Items a stream may run ahead of its reader before the producer waits."""
CANCEL_AGAIN = 0.05
"""Seconds after which a cancellation that did not end a producer is repeated."""


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
        self,
        open_: Callable[[], Awaitable[AsyncIterator[T]]],
        *,
        maxsize: int = STREAM_QUEUE,
    ) -> Stream[T]:
        """An async iterator on the caller's loop over the source `open_()` returns.

        `open_` runs on the backend loop (where the source's resources live)
        at once, when the stream is made on a running loop, so the source is
        being opened while the caller goes on; `Stream.ready()` waits for it.
        The source is then iterated on the backend loop.
        """
        return Stream(self, open_, maxsize)


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[None] | None,
    error: BaseException | None = None,
) -> None:
    """Resolve a caller-loop future from the backend thread, unless that loop is gone."""
    if future is None:
        return

    def settle() -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    with contextlib.suppress(RuntimeError):  # the caller's loop is closed
        loop.call_soon_threadsafe(settle)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failure as seen: a stream nobody waited on is not an error to log."""
    if not future.cancelled():
        future.exception()


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
    """The caller's end of a stream (see `Bridge.stream`); a `console.client.EventStream`.

    Made on a running loop, it starts opening its source at once, so
    nothing the source would carry is missed between making the stream and
    the first read: `ready()` returns when the source is open, or raises
    what opening it raised, as does the first `__anext__`.

    Cancelling a task that waits in `__anext__` closes the stream: the
    producer on the backend loop is cancelled, and the source closed there.
    `aclose()` does the same explicitly; use `contextlib.aclosing` so a
    `break` does not leave the producer waiting.
    """

    def __init__(
        self, bridge: Bridge, open_: Callable[[], Awaitable[AsyncIterator[T]]], maxsize: int
    ) -> None:
        self._bridge = bridge
        self._open = open_
        self._maxsize = maxsize
        self._queue: asyncio.Queue[T | _End] | None = None
        self._opened: asyncio.Future[None] | None = None
        """Resolved on the caller's loop once the source is open (or failed, or closed)."""
        self._producer: asyncio.Task[None] | None = None
        """Opens then drains the source; only ever touched on the backend loop."""
        self._reading = False
        """The producer has opened the source and reads it (backend loop only)."""
        self._closed = False
        self._stopped = False
        try:
            caller = asyncio.get_running_loop()
        except RuntimeError:
            return  # made outside a loop: starts at the first ready() or read
        self._start(caller)

    @property
    def closed(self) -> bool:
        return self._closed

    def _start(self, caller: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        queue: asyncio.Queue[T | _End] = asyncio.Queue(self._maxsize)
        opened: asyncio.Future[None] = caller.create_future()
        opened.add_done_callback(_retrieve)
        self._queue, self._opened = queue, opened
        try:
            # The producer is created by a plain callback rather than through
            # `Bridge.call`, so `aclose()`'s later call (queued behind it on
            # the backend loop) always finds it.
            self._bridge.loop.call_soon_threadsafe(self._spawn, caller, queue, opened)
        except (BridgeClosed, RuntimeError):  # not running, or its loop closed meanwhile
            self._closed = True
            opened.set_exception(BridgeClosed("the backend thread is not running"))
        return opened

    def __aiter__(self) -> Stream[T]:
        return self

    async def ready(self) -> None:
        """Return once the source is open; raise what opening it raised.

        Returns at once for a stream closed before it opened (reading it then ends).
        """
        opened = self._opened
        if opened is None:
            if self._closed:
                return
            opened = self._start(asyncio.get_running_loop())
        await asyncio.shield(opened)

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if self._opened is None:
            self._start(asyncio.get_running_loop())
        queue, opened = self._queue, self._opened
        assert queue is not None
        assert opened is not None
        try:
            await asyncio.shield(opened)
        except asyncio.CancelledError:
            await asyncio.shield(self.aclose())
            raise
        except BaseException:
            self._closed = True
            raise
        try:
            item = await queue.get()
        except asyncio.CancelledError:
            await asyncio.shield(self.aclose())
            raise
        if self._closed:  # by aclose() while this read waited
            raise StopAsyncIteration
        if isinstance(item, _End):
            self._closed = True
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Cancel the producer and wait until the source is closed on the backend loop."""
        self._closed = True
        opened, queue = self._opened, self._queue
        if opened is not None and not opened.done():
            opened.set_result(None)  # a pending ready() returns
        if queue is not None:
            with contextlib.suppress(asyncio.QueueFull):  # full: the reader is not waiting
                queue.put_nowait(_End())  # a read waiting meanwhile ends
        if opened is None or self._stopped or not self._bridge.running:
            return
        self._stopped = True
        with contextlib.suppress(BridgeClosed, RuntimeError):
            await self._bridge.call(self._stop())

    def _spawn(
        self,
        caller: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[T | _End],
        opened: asyncio.Future[None],
    ) -> None:
        """Runs on the backend loop: start the producer."""
        self._producer = asyncio.get_running_loop().create_task(
            self._produce(caller, queue, opened), name="bridge-stream"
        )

    async def _stop(self) -> None:
        """Runs on the backend loop: end the producer, which closes the source.

        A producer still opening its source is let finish (it then sees the
        stream closed and closes the source itself): opening reads the
        database, and a query cancelled midway leaves its connection to a
        cleanup that must not be cancelled a second time (see `Bridge`).
        Once it reads the source, which only waits on the bus, it is
        cancelled, again until it ends: a cancellation can be swallowed on
        its way down (on Python 3.11, redis-py awaits `asyncio.wait_for`,
        which may turn a cancellation into a result), and a producer that
        went on would wait for events forever.
        """
        producer, self._producer = self._producer, None
        while producer is not None and not producer.done():
            if self._reading:
                producer.cancel()
            await asyncio.wait({producer}, timeout=CANCEL_AGAIN)
        if producer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _produce(
        self,
        caller: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[T | _End],
        opened: asyncio.Future[None],
    ) -> None:
        """Runs on the backend loop: open the source, then source → the caller's queue,
        waiting while it is full."""

        async def hand(item: T | _End) -> None:
            put = asyncio.run_coroutine_threadsafe(queue.put(item), caller)
            await asyncio.wrap_future(put)

        try:
            source = await self._open()
        except asyncio.CancelledError:
            _settle(caller, opened)  # closed before it opened
            raise
        except Exception as error:  # noqa: BLE001 - handed to the reader, who raises it
            _settle(caller, opened, error)
            return
        _settle(caller, opened)
        end = _End()
        self._reading = True
        try:
            try:
                if self._closed:  # while it opened: never read it
                    return
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
