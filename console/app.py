"""The desktop app: QApplication, the qasync loop, error reporting, then the start-up flow.

`run()` is what `quarterdeck` with no arguments calls (through
`console.launcher`). Qt and the asyncio loop are one: qasync's QEventLoop,
as `console.eventloop.QtLoop`, drives both, started by
`asyncio.Runner(loop_factory=…)` (Python 3.11 has no
`asyncio.run(loop_factory=…)`). Quitting on the last window is turned off:
the app ends when `Shell.finished()` says every window is gone and every
client closed, so an embedded core always shuts down cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from console import reporting, theme
from console.asyncslots import cancel_all
from console.connections import Connector, Keychain, ProfileStore
from console.eventloop import QtLoop
from console.startup import Shell

APP_NAME = "Quarterdeck"
ORGANIZATION = "Quarterdeck"
DESKTOP_FILE = "quarterdeck"

log = logging.getLogger(__name__)


def configure_application(app: QApplication) -> None:
    """Names for QSettings, the icon, the theme, and the error hooks: what every run needs."""
    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QApplication.setApplicationDisplayName(APP_NAME)
    QApplication.setDesktopFileName(DESKTOP_FILE)
    # INI everywhere: one readable format to support, also on Windows and macOS.
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    theme.install(app)
    app.setWindowIcon(theme.icon("quarterdeck"))
    reporting.install_excepthook()


async def _main(app: QApplication, shell: Shell) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(reporting.loop_exception_handler)
    shell.show_connections()
    await shell.finished()
    await cancel_all()
    return 0


def _interrupt_on_ctrl_c(shell: Shell, app: QApplication) -> QTimer:
    """Ctrl+C in the terminal closes the windows cleanly; the timer lets Python see the signal."""
    signal.signal(signal.SIGINT, lambda *_: shell.quit())
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)
    return timer


def run(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = QApplication([sys.argv[0], *(argv or [])])
    configure_application(app)
    app.setQuitOnLastWindowClosed(False)
    shell = Shell(Connector(), ProfileStore(), Keychain())
    _interrupt_on_ctrl_c(shell, app)
    with asyncio.Runner(loop_factory=lambda: QtLoop(app)) as runner:
        return runner.run(_main(app, shell))
