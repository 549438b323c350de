"""The qasync loop the console and contract tests run on, as the app does.

Both directories hand it to pytest-asyncio through their conftest's
`pytest_asyncio_loop_factories` hook (QT-NOTES: the supported way in
pytest-asyncio 1.5).
"""

from __future__ import annotations

import asyncio

_LOOPS: list[asyncio.AbstractEventLoop] = []
"""Every qasync loop made, kept alive until the run ends.

A closed loop's timer object is a Python-owned QObject in a reference cycle;
left to the garbage collector, it may be destroyed by a collection that runs
on another thread (the backend's, the server's), where Qt cannot unregister
its timers, and a later timer event then reaches freed memory (a segfault
in `QTimerInfoList::activateTimers`). Kept here, it never is."""


def new_qasync_loop() -> asyncio.AbstractEventLoop:
    """The console's qasync loop (`console.eventloop.QtLoop`) over the QApplication
    (made if there is none yet)."""
    from PySide6.QtWidgets import QApplication

    from console.eventloop import QtLoop

    app = QApplication.instance() or QApplication([])
    loop: asyncio.AbstractEventLoop = QtLoop(app)
    _LOOPS.append(loop)
    return loop
