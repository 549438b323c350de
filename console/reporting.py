"""No error vanishes: every failure is logged and shown to the person at the screen.

Three doors lead here: `sys.excepthook` (an exception in a plain Qt slot),
the asyncio loop's exception handler (a callback or a forgotten task), and
`console.asyncslots` (a coroutine started from the UI). Errors the backend
raises on purpose (`QuarterdeckError`: wrong input, conflict, forbidden…)
are expected in daily use: they get a warning box with their message and a
one-line log. Anything else is a bug: it is logged with its traceback and
shown in a critical box whose details hold the traceback, so it can be
reported.

Boxes are opened with `open()`/`show()`, never `exec()`: a nested event
loop inside the qasync loop would let other coroutines run in the middle
of the slot that raised.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from console.client.errors import QuarterdeckError

log = logging.getLogger("console.errors")

ErrorListener = Callable[[BaseException], None]
_listeners: list[ErrorListener] = []
_orphans: set[QMessageBox] = set()


def sentence(text: str) -> str:
    """'the server is down' -> 'The server is down.': backend messages are lower-case clauses."""
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def describe(error: BaseException) -> str:
    """What a person reads about `error`: its message when it is one of ours."""
    if isinstance(error, QuarterdeckError):
        return sentence(error.message)
    return sentence(f"{type(error).__name__}: {error}") if str(error) else type(error).__name__


def add_listener(listener: ErrorListener) -> Callable[[], None]:
    """Also call `listener` for every reported error (tests use it); returns the remover."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def report(error: BaseException, *, parent: QWidget | None = None, what: str = "") -> QMessageBox:
    """Log `error` and show it in a window-modal box over `parent`; returns the box.

    `what` completes "Could not …" (e.g. "save the setting"), so the box says
    what failed before why.
    """
    expected = isinstance(error, QuarterdeckError)
    if expected:
        log.warning("could not %s: %s", what or "complete the action", describe(error))
    else:
        log.error(
            "unexpected error while trying to %s",
            what or "run",
            exc_info=(type(error), error, error.__traceback__),
        )
    for listener in list(_listeners):
        listener(error)
    if parent is not None and not shiboken6.isValid(parent):
        parent = None
    box = QMessageBox(parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowTitle("Quarterdeck")
    headline = f"Could not {what}." if what else "Something went wrong."
    box.setText(headline)
    if expected:
        box.setIcon(QMessageBox.Icon.Warning)
        box.setInformativeText(describe(error))
    else:
        box.setIcon(QMessageBox.Icon.Critical)
        box.setInformativeText(
            f"{describe(error)}\n\nThis is a bug in Quarterdeck. The details below "
            "are also in the log; please include them when you report it."
        )
        box.setDetailedText(
            "".join(traceback.format_exception(type(error), error, error.__traceback__))
        )
    box.setObjectName("ErrorBox")
    if parent is not None:
        box.open()
    else:
        # No parent owns it: keep the wrapper alive until it closes, or Python deletes it.
        _orphans.add(box)
        box.finished.connect(lambda _result: _orphans.discard(box))
        box.show()
    return box


def _excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    if QApplication.instance() is None:
        log.error("unhandled error", exc_info=(kind, error, tb))
        return
    error.__traceback__ = tb
    report(error, parent=QApplication.activeWindow())


def install_excepthook() -> None:
    """Route exceptions that escape Qt slots to `report` instead of stderr only."""
    sys.excepthook = _excepthook


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's last resort (a failing callback, a task nobody awaited): report it too."""
    error = context.get("exception")
    if isinstance(error, BaseException):
        report(error, parent=QApplication.activeWindow())
    else:
        loop.default_exception_handler(context)
