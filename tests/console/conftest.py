"""Console tests: pytest-qt offscreen, coroutines on the qasync loop, nothing leaks.

- Async tests (`@pytest.mark.asyncio`) run on a qasync QEventLoop, the loop
  the app runs on (pytest-asyncio's `pytest_asyncio_loop_factories` hook;
  QT-NOTES: never block on `qtbot.wait` inside them, use `until`).
- QSettings write to the test's own directory, the keychain is an
  in-memory backend (DESIGN: tests install one), so no test touches the
  person's real profiles or keychain.
- Every error `console.reporting` shows is collected; one that is not a
  `QuarterdeckError` (a bug) fails the test, as would an uncaught exception.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import keyring
import keyring.backend
import pytest
from PySide6.QtCore import QCoreApplication, QSettings
from PySide6.QtWidgets import QApplication, QWidget

from backend.config import Settings
from console import reporting, theme
from console.asyncslots import cancel_all
from console.client.errors import QuarterdeckError
from console.connections import Connector, Keychain, ProfileStore
from console.startup import Shell
from tests.conftest import TEST_SECRET
from tests.qtloop import new_qasync_loop

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

T = TypeVar("T")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Run this directory's async tests on a qasync loop over the Qt event loop, as the app does."""
    return {"qasync": new_qasync_loop}


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keychain that lives and dies with the test."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def qt_settings(tmp_path: Path) -> Path:
    """QSettings() of every test: INI files in the test's directory."""
    folder = tmp_path / "settings"
    QCoreApplication.setOrganizationName("QuarterdeckTests")
    QCoreApplication.setApplicationName("Quarterdeck")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    return folder


@pytest.fixture
def app(qapp: QApplication) -> Iterator[QApplication]:
    """The QApplication, themed as the console themes it; top-level windows closed after."""
    theme.install(qapp)
    # As in the app: closing the last window must not quit, which would stop the qasync loop.
    qapp.setQuitOnLastWindowClosed(False)
    yield qapp
    for widget in QApplication.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QApplication.processEvents()
    # Collect the test's reference cycles now, on the Qt thread: a QObject collected later
    # by a collection that happens to run on a backend thread is destroyed there, which Qt
    # refuses ("Timers cannot be stopped from another thread") or crashes on.
    gc.collect()


@pytest.fixture(autouse=True)
def reported() -> Iterator[list[BaseException]]:
    """Errors shown to the user during the test; bugs among them fail it."""
    errors: list[BaseException] = []
    remove = reporting.add_listener(errors.append)
    yield errors
    remove()
    bugs = [error for error in errors if not isinstance(error, QuarterdeckError)]
    if bugs:
        raise AssertionError(f"the console reported unexpected errors: {bugs!r}") from bugs[0]


@pytest.fixture
def embedded_settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    """A fresh embedded backend in the test's directory, already migrated, no background jobs."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sqlite_template, data / "quarterdeck.db")
    return Settings(
        data_dir=data,
        secret_key=TEST_SECRET,
        run_jobs=False,
        collect_local=False,
        live_events=False,
    )


@asynccontextmanager
async def open_shell(connector: Connector | None = None) -> AsyncIterator[Shell]:
    """A `Shell` that is quit, awaited and emptied of tasks before the test body ends.

    Inside the body, not in a fixture's teardown: pytest-qt processes Qt events between
    the test and its fixtures' teardown, when the loop is no longer running, and a task
    still pending then would take steps outside any loop (and an HTTP request would
    leave its socket open). The app does the same when it quits (`console.app`).
    """
    shell = Shell(connector or Connector(), ProfileStore(), Keychain())
    try:
        yield shell
    finally:
        shell.quit()
        await asyncio.wait_for(shell.finished(), 30)
        await cancel_all()
        shell.deleteLater()
        await asyncio.sleep(0.05)


async def until(
    predicate: Callable[[], T | None], *, within: float = 15.0, what: str = "the condition"
) -> T:
    """Poll `predicate` on the running loop until it is truthy; return its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


def find_window(kind: type[T]) -> T | None:
    """The visible top-level widget of `kind`, if any."""
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, kind) and isinstance(widget, QWidget) and widget.isVisible():
            return widget
    return None
