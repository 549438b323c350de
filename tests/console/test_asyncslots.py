"""Coroutines started from the UI: errors are shown and logged, never lost."""

from __future__ import annotations

import asyncio

import pytest
import qasync
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton, QWidget

from console.asyncslots import async_slot, run_async
from console.client.errors import Conflict
from tests.console.conftest import until


class Form(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[object, ...]] = []
        self.button = QPushButton("Save", self)
        self.button.clicked.connect(self.save)

    @async_slot("save the form")
    async def save(self) -> None:
        self.calls.append(())
        await asyncio.sleep(0)
        raise Conflict("someone else changed it first")

    @async_slot("take one")
    async def take_one(self, value: int) -> None:
        self.calls.append((value,))


def _boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]


@pytest.mark.asyncio
async def test_an_error_is_shown_with_what_failed(
    app: QApplication, reported: list[BaseException]
) -> None:
    form = Form()
    form.show()
    form.button.click()  # `clicked` sends `checked`; the slot takes nothing: dropped
    await until(lambda: reported, what="the error to be reported")
    assert form.calls == [()]
    assert isinstance(reported[0], Conflict)
    box = await until(lambda: next(iter(_boxes()), None), what="the message box")
    assert box.text() == "Could not save the form."
    assert box.informativeText() == "Someone else changed it first."
    box.close()
    form.close()


@pytest.mark.asyncio
async def test_extra_signal_arguments_are_trimmed(app: QApplication) -> None:
    form = Form()
    task = form.take_one(7, "extra")
    assert task is not None
    await task
    assert form.calls == [(7,)]


@pytest.mark.asyncio
async def test_a_handled_error_and_a_cancellation_stay_quiet(
    app: QApplication, reported: list[BaseException]
) -> None:
    handled: list[BaseException] = []

    async def fails() -> None:
        raise Conflict("stale")

    def keep(error: BaseException) -> bool:
        handled.append(error)
        return True

    await asyncio.gather(run_async(fails(), on_error=keep), return_exceptions=True)
    slow = run_async(asyncio.sleep(30))
    await asyncio.sleep(0)
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
    await asyncio.sleep(0)
    assert len(handled) == 1
    assert reported == []


@pytest.mark.asyncio
async def test_a_destroyed_parent_cancels_its_task(app: QApplication) -> None:
    parent = QWidget()
    task = run_async(asyncio.sleep(30), parent=parent)
    parent.deleteLater()
    await until(task.done, what="the task to end")
    assert task.cancelled()


@pytest.mark.asyncio
async def test_a_bug_is_reported_as_one(app: QApplication, reported: list[BaseException]) -> None:
    async def broken() -> None:
        raise ZeroDivisionError("division by zero")

    task = run_async(broken(), what="compute")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert isinstance(reported[0], ZeroDivisionError)
    box = await until(lambda: next(iter(_boxes()), None), what="the message box")
    assert "bug" in box.informativeText()
    assert "ZeroDivisionError" in box.detailedText()
    box.close()
    reported.clear()  # expected here; the fixture would fail the test otherwise


@pytest.mark.asyncio
async def test_async_tests_run_on_the_apps_loop(app: QApplication) -> None:
    assert isinstance(asyncio.get_running_loop(), qasync.QEventLoop)
