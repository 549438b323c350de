"""Ask before something that cannot be undone, without a nested event loop.

`await confirm(parent, ...)` opens a `ConfirmBox` with `open()` (never
`exec()`, which would stall the qasync loop's other work) and returns True
only when the person pressed the action's own button, named after what it
does ("Delete user"), never a bare "OK". Cancel is the default button, so
Enter does not destroy anything.
"""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget


class ConfirmBox(QMessageBox):
    def __init__(
        self,
        title: str,
        text: str,
        action: str,
        informative: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("ConfirmBox")
        self.setIcon(QMessageBox.Icon.Warning)
        self.setWindowTitle(title)
        self.setText(text)
        if informative:
            self.setInformativeText(informative)
        self.confirm_button: QPushButton = self.addButton(
            action, QMessageBox.ButtonRole.DestructiveRole
        )
        self.cancel_button: QPushButton = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(self.cancel_button)
        self.setEscapeButton(self.cancel_button)


async def confirm(
    parent: QWidget | None, title: str, text: str, action: str, informative: str = ""
) -> bool:
    """Show a `ConfirmBox`; True when `action`'s button was pressed."""
    box = ConfirmBox(title, text, action, informative, parent)
    done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def finished(_result: int) -> None:
        if not done.done():
            done.set_result(box.clickedButton() is box.confirm_button)

    box.finished.connect(finished)
    box.open()
    try:
        return await done
    finally:
        box.deleteLater()
