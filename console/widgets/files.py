"""Choosing a file to open or save without a nested event loop.

`QFileDialog.getSaveFileName` and friends run `exec()`, a loop inside the
qasync loop (see `console.widgets.forms`); these helpers `open()` the dialog
and await its result instead, so the backend's answers keep arriving.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from console.widgets.forms import wait_closed

JSON_FILTER = "JSON files (*.json);;All files (*)"


async def choose_file(
    parent: QWidget | None,
    title: str,
    *,
    save: bool,
    name_filter: str = JSON_FILTER,
    suggested: str = "",
    suffix: str = "json",
) -> Path | None:
    """The path the person picked, or None when they cancelled."""
    dialog = QFileDialog(parent, title)
    dialog.setObjectName("SaveFileDialog" if save else "OpenFileDialog")
    dialog.setNameFilter(name_filter)
    if save:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setDefaultSuffix(suffix)
    else:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    if suggested:
        dialog.selectFile(suggested)
    try:
        accepted = await wait_closed(dialog)
        files = dialog.selectedFiles()
    finally:
        dialog.deleteLater()
    return Path(files[0]) if accepted and files else None
