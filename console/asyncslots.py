"""Start a coroutine from the UI, and never lose its error.

Every `Client` call is a coroutine, but Qt signals call plain functions.
This module is the one bridge the panels use. Two forms:

`run_async(coro, parent=widget, what="load the users")`
    Schedules `coro` on the running (qasync) loop and returns its
    `asyncio.Task`. If it raises, the error is logged and shown over
    `parent` as "Could not load the users." with the reason
    (`console.reporting.report`). The task is cancelled when `parent` is
    destroyed, so a closed panel's coroutines do not touch deleted widgets.
    A strong reference is kept until the task ends (asyncio only keeps a
    weak one).

`@async_slot("save the setting")` on an `async def` method of a QWidget
    Makes the method connectable to any signal:
    `button.clicked.connect(self.save)`. Each emit calls `run_async` with
    the widget as parent. Extra signal arguments the method does not take
    are dropped (`clicked` sends `checked`), so the same method serves
    several signals. (qasync's own `@asyncSlot` fails on plain functions,
    qasync issue #177, and shows nothing on error.)

Handling an error in place instead of a box: catch it inside the
coroutine (e.g. show `console.reporting.describe(error)` in a label next
to the field and keep what the user typed), or pass `on_error=`, a callable
that gets the exception and returns True when it handled it.
`asyncio.CancelledError` is never reported.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import shiboken6
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from console import reporting

T = TypeVar("T")
P = ParamSpec("P")
W = TypeVar("W", bound=QWidget)
ErrorHandler = Callable[[BaseException], bool]

_running: set[asyncio.Task[Any]] = set()


def run_async(
    coro: Coroutine[Any, Any, T],
    *,
    parent: QWidget | None = None,
    what: str = "",
    on_error: ErrorHandler | None = None,
) -> asyncio.Task[T]:
    """Run `coro` on the current loop; log and show its error over `parent`. See the module doc."""
    task = asyncio.ensure_future(coro)
    _running.add(task)

    def finished(done: asyncio.Task[T]) -> None:
        _running.discard(done)
        if done.cancelled():
            return
        error = done.exception()
        if error is None:
            return
        if on_error is not None and on_error(error):
            return
        reporting.report(error, parent=parent, what=what)

    task.add_done_callback(finished)
    if parent is not None:
        _cancel_with(task, parent)
    return task


def _cancel_with(task: asyncio.Task[Any], parent: QWidget) -> None:
    """Cancel `task` if `parent` is destroyed first; drop the connection when the task ends."""
    connection = parent.destroyed.connect(lambda *_: task.cancel())

    def disconnect(_done: asyncio.Task[Any]) -> None:
        if shiboken6.isValid(parent):
            QObject.disconnect(connection)

    task.add_done_callback(disconnect)


def async_slot(
    what: str = "",
) -> Callable[
    [Callable[Concatenate[W, P], Coroutine[Any, Any, Any]]],
    Callable[..., asyncio.Task[Any] | None],
]:
    """Decorate an `async def` method of a QWidget so a signal can start it. See the module doc."""

    def decorate(
        method: Callable[Concatenate[W, P], Coroutine[Any, Any, Any]],
    ) -> Callable[..., asyncio.Task[Any] | None]:
        takes = _positional_count(method)

        @functools.wraps(method)
        def slot(self: W, *args: Any) -> asyncio.Task[Any] | None:
            if not shiboken6.isValid(self):
                return None
            if takes is not None:
                args = args[:takes]
            return run_async(method(self, *args), parent=self, what=what)  # type: ignore[call-arg]

        return slot

    return decorate


def _positional_count(method: Callable[..., Any]) -> int | None:
    """How many positional arguments after `self` the method takes; None when it takes *args."""
    parameters = list(inspect.signature(method).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    return sum(
        p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for p in parameters
    )


async def cancel_all() -> None:
    """Cancel every task started here and wait for them (the app calls this when quitting)."""
    tasks = [task for task in _running if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


class SerialLoad:
    """A widget's load, run one at a time and never cancelled half-way.

    A query cancelled half-way costs its database connection (and on SQLite
    runs to its end anyway), so a load asked for while one runs is not
    started beside it nor does it cancel it: it is remembered, and one more
    load starts when the running one ends, however many were asked for
    meanwhile. `busy(True)` / `busy(False)` bracket the loads (a progress
    bar's `setVisible`). Errors are reported as by `run_async`.
    """

    def __init__(
        self,
        owner: QWidget,
        load: Callable[[], Coroutine[Any, Any, None]],
        *,
        what: str,
        busy: Callable[[bool], None],
    ) -> None:
        self._owner = owner
        self._load = load
        self._what = what
        self._busy = busy
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._stopped = False

    def request(self) -> None:
        """Load now, or once more after the load that is running."""
        if self._stopped:
            return
        if self._task is not None:
            self._again = True
            return
        self._busy(True)
        self._task = run_async(self._load(), parent=self._owner, what=self._what)
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task is not self._task or not shiboken6.isValid(self._owner):
            return
        self._task = None
        self._busy(False)
        if self._again and not self._stopped:
            self._again = False
            self.request()

    async def stop(self) -> None:
        """Start no more loads, and wait for the running one (its errors are reported)."""
        self._stopped = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
