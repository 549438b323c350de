"""A dialog that submits a form asynchronously and keeps it on error.

Every form of the start-up flow (sign-in, first admin, change password,
connection profile) follows one pattern, so it is written once: pressing
OK runs the subclass's `submit()` coroutine with the inputs disabled and a
busy bar showing; success accepts the dialog; a `QuarterdeckError` is shown
in red above the buttons, the field it names gets the focus with its text
selected, and everything typed stays. Cancel while busy cancels the
coroutine. Unexpected errors go to `console.reporting` like any other bug.

Dialogs are opened with `open()`, never `exec()` (a nested loop would
stall the qasync loop's other work); `await wait_closed(dialog)` gets the
result.
"""

from __future__ import annotations

import asyncio
from typing import Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from console import reporting
from console.asyncslots import run_async
from console.client.errors import QuarterdeckError


def error_field(error: QuarterdeckError) -> str | None:
    """The input an error is about: `details["field"]` (services) or the validation location."""
    field = error.details.get("field")
    if isinstance(field, str):
        return field
    errors = error.details.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        location = [part for part in errors[0].get("loc", []) if isinstance(part, str)]
        if location:
            return location[-1]
    return None


class FormDialog(QDialog):
    """Base of the async forms. Subclasses add rows, then implement `submit()`."""

    def __init__(self, title: str, intro: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setModal(True)
        self.setMinimumWidth(420)
        self._task: asyncio.Task[Any] | None = None
        self._fields: dict[str, QWidget] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        layout.setSpacing(12)
        if intro:
            self.intro = QLabel(intro, self)
            self.intro.setWordWrap(True)
            layout.addWidget(self.intro)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.form.setVerticalSpacing(8)
        self.form.setHorizontalSpacing(12)
        layout.addLayout(self.form)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("ErrorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        layout.addWidget(self.error_label)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.progress.hide()
        layout.addWidget(self.progress)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self._start)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    # -- building ---------------------------------------------------------------------

    def set_ok_text(self, text: str) -> None:
        button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        button.setText(text)

    def ok_button(self) -> QAbstractButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def add_field(self, name: str, label: str, widget: QWidget) -> None:
        """A labelled row; `name` matches the `field` an error may name."""
        widget.setObjectName(name)
        self._fields[name] = widget
        self.form.addRow(label, widget)

    def line_edit(
        self, name: str, label: str, text: str = "", *, password: bool = False
    ) -> QLineEdit:
        edit = QLineEdit(text, self)
        if password:
            edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.add_field(name, label, edit)
        return edit

    # -- running ----------------------------------------------------------------------

    async def submit(self) -> None:
        """Do the work; raise a `QuarterdeckError` to show it and keep the form open."""
        raise NotImplementedError

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def show_error(self, message: str, field: str | None = None) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        widget = self._fields.get(field or "")
        if widget is not None:
            widget.setFocus()
            if isinstance(widget, QLineEdit):
                widget.selectAll()

    def message_for(self, error: QuarterdeckError) -> str:
        """How this form words `error`; subclasses refine it (e.g. sign-in)."""
        return reporting.describe(error)

    def _start(self) -> None:
        if self.busy:
            return
        self._task = run_async(self._run(), parent=self, what=self.windowTitle().lower())

    async def _run(self) -> None:
        self._set_busy(True)
        try:
            await self.submit()
        except QuarterdeckError as error:
            self._set_busy(False)
            self.show_error(self.message_for(error), error_field(error))
            return
        except BaseException:
            self._set_busy(False)
            raise
        self._set_busy(False)
        self.error_label.hide()
        self.accept()

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        for widget in self._fields.values():
            widget.setEnabled(not busy)
        self.ok_button().setEnabled(not busy)
        if busy:
            self.error_label.hide()

    def reject(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().reject()


async def wait_closed(dialog: QDialog) -> bool:
    """`open()` the dialog and wait until it closes; True when accepted."""
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if not done.done():
            done.set_result(result)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        return await done == QDialog.DialogCode.Accepted.value
    finally:
        if shiboken6.isValid(dialog):
            dialog.finished.disconnect(finished)
