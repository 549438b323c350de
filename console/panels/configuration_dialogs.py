"""The configuration panel's dialogs: save, conflict, rollback, export, import.

Each asks the person one thing and hands the answer back; the writes
themselves are the panel's (or, for save and rollback, a coroutine the
panel passes in), so a failure is shown in the dialog with everything
typed kept, as every `FormDialog` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from enum import Enum
from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console import reporting
from console.asyncslots import run_async
from console.client import Client
from console.client.errors import InvalidInput, QuarterdeckError
from console.client.types import SettingChange, SettingView
from console.models.setting_history import ChangesModel, HistoryRow
from console.models.settings import SettingField
from console.models.settingspec import FieldSpec, when
from console.widgets.forms import FormDialog

REASON_NEEDED = "give a reason: it goes into the setting's history and the audit log"


def _reason_required(text: str) -> str:
    reason = text.strip()
    if not reason:
        raise InvalidInput(REASON_NEEDED, details={"field": "reason"})
    return reason


def mine_text(field: SettingField) -> str:
    """The person's draft as shown to them; a new secret is never echoed."""
    if field.spec.secret:
        return "a new secret value" if field.draft else "an empty value (clears the secret)"
    return field.spec.format(field.draft)


def theirs_text(spec: FieldSpec, view: SettingView) -> str:
    if spec.secret:
        return "a secret value (not shown)" if view.is_set else "(not set)"
    return spec.format(view.value, masked=view.masked)


class SaveDialog(FormDialog):
    """Lists the unsaved changes and asks why; OK runs `save(reason)`."""

    def __init__(
        self,
        fields: list[SettingField],
        save: Callable[[str], Awaitable[None]],
        parent: QWidget | None = None,
    ) -> None:
        count = len(fields)
        super().__init__(
            "Save settings",
            f"Save {count} change{'s' if count != 1 else ''}:",
            parent,
        )
        self.setObjectName("SaveDialog")
        self._save = save
        lines = []
        for field in fields:
            line = f"• {field.key}: {theirs_text(field.spec, field.view)} → {mine_text(field)}"
            if field.spec.restart_required:
                line += " (takes effect after a restart)"
            lines.append(line)
        self.summary = QLabel("\n".join(lines), self)
        self.summary.setObjectName("ChangeSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.form.addRow(self.summary)
        self.reason = self.line_edit("reason", "Reason")
        self.reason.setPlaceholderText("Why? (kept in the history and the audit log)")
        self.set_ok_text("Save")

    async def submit(self) -> None:
        await self._save(_reason_required(self.reason.text()))


class Resolution(Enum):
    RELOAD = "reload"
    """Take their value; the draft is discarded."""
    OVERWRITE = "overwrite"
    """Write the draft over theirs (confirmed on the review page)."""
    LATER = "later"
    """Decide later: keep the draft, marked as changed elsewhere."""


class ConflictDialog(QDialog):
    """Someone wrote the setting since the editor loaded it: theirs or mine?

    Shows both values, who changed it and when. Nothing is lost until the
    person chooses: "Reload (discard mine)", or "Review and overwrite…" then
    "Overwrite" on a page that says exactly what will be replaced. Closing
    the dialog keeps the draft (`Resolution.LATER`).
    """

    def __init__(self, field: SettingField, theirs: SettingView, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setObjectName("ConflictDialog")
        self.setWindowTitle("Changed by someone else")
        self.setModal(True)
        self.setMinimumWidth(480)
        self.choice = Resolution.LATER
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self._choose_page(field, theirs))
        self.stack.addWidget(self._review_page(field, theirs))
        outer = QVBoxLayout(self)
        outer.addWidget(self.stack)
        self.reload_button.setDefault(True)

    def _choose_page(self, field: SettingField, theirs: SettingView) -> QWidget:
        spec = field.spec
        who = theirs.updated_by or "someone"
        at = when(theirs.updated_at)
        page = QWidget(self.stack)
        self.headline = QLabel(
            f"<b>{escape(spec.title)}</b> ({escape(spec.key)}) was changed by "
            f"<b>{escape(who)}</b> at {at}, while you were editing it.",
            page,
        )
        self.headline.setTextFormat(Qt.TextFormat.RichText)
        self.headline.setWordWrap(True)
        grid = QFormLayout()
        self.mine = QLabel(mine_text(field), page)
        self.mine.setObjectName("MineValue")
        self.theirs = QLabel(
            f"{theirs_text(spec, theirs)} — version {theirs.version}, by {who} at {at}", page
        )
        self.theirs.setObjectName("TheirValue")
        self.base = QLabel(f"{theirs_text(spec, field.view)} — version {field.view.version}", page)
        for label in (self.mine, self.theirs, self.base):
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
        grid.addRow("Your value:", self.mine)
        grid.addRow("Their value:", self.theirs)
        grid.addRow("You started from:", self.base)
        note = QLabel("Nothing is saved or discarded until you choose.", page)
        note.setObjectName("Muted")
        self.reload_button = QPushButton("Reload (discard mine)", page)
        self.review_button = QPushButton("Review and overwrite…", page)
        self.later_button = QPushButton("Decide later", page)
        self.reload_button.clicked.connect(lambda: self._choose(Resolution.RELOAD))
        self.review_button.clicked.connect(lambda: self.stack.setCurrentIndex(1))
        self.later_button.clicked.connect(self.reject)
        layout = QVBoxLayout(page)
        layout.addWidget(self.headline)
        layout.addLayout(grid)
        layout.addWidget(note)
        layout.addLayout(_row(self.reload_button, self.review_button, self.later_button))
        return page

    def _review_page(self, field: SettingField, theirs: SettingView) -> QWidget:
        who = theirs.updated_by or "someone"
        page = QWidget(self.stack)
        self.review_text = QLabel(
            f"Overwrite {who}'s value ({theirs_text(field.spec, theirs)}, version "
            f"{theirs.version}) with yours ({mine_text(field)})?\n\n"
            f"{self._difference(field, theirs)}",
            page,
        )
        self.review_text.setTextFormat(Qt.TextFormat.PlainText)
        self.review_text.setObjectName("ReviewText")
        self.review_text.setWordWrap(True)
        self.overwrite_button = QPushButton("Overwrite", page)
        self.back_button = QPushButton("Back", page)
        self.overwrite_button.clicked.connect(lambda: self._choose(Resolution.OVERWRITE))
        self.back_button.clicked.connect(lambda: self.stack.setCurrentIndex(0))
        layout = QVBoxLayout(page)
        layout.addWidget(self.review_text)
        layout.addStretch(1)
        layout.addLayout(_row(self.overwrite_button, self.back_button))
        return page

    @staticmethod
    def _difference(field: SettingField, theirs: SettingView) -> str:
        if field.spec.secret or theirs.masked:
            return "Their secret will be replaced by yours."
        return field.spec.difference(theirs.value, field.draft).replace(
            "Current value differs", "Yours replaces theirs"
        )

    def _choose(self, choice: Resolution) -> None:
        self.choice = choice
        self.accept()


def _row(*buttons: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addStretch(1)
    for button in buttons:
        row.addWidget(button)
    return row


class RollbackDialog(FormDialog):
    """Confirms a rollback to one version, shows what changes, asks why."""

    def __init__(
        self,
        spec: FieldSpec,
        target: HistoryRow,
        difference: str,
        rollback: Callable[[str], Awaitable[None]],
        parent: QWidget | None = None,
    ) -> None:
        name = "its default" if target.is_default else f"version {target.version}"
        value = spec.format(target.value, masked=target.masked or spec.secret)
        super().__init__(
            "Roll back setting",
            f"Roll {spec.key} back to {name} ({value})? This writes a new version; "
            "the history keeps every earlier one.",
            parent,
        )
        self.setObjectName("RollbackDialog")
        self._rollback = rollback
        self.difference = QLabel(difference, self)
        self.difference.setWordWrap(True)
        self.form.addRow("Change:", self.difference)
        self.reason = self.line_edit("reason", "Reason")
        self.reason.setPlaceholderText("Why? (kept in the history and the audit log)")
        self.set_ok_text("Roll back")

    async def submit(self) -> None:
        await self._rollback(_reason_required(self.reason.text()))


class ExportDialog(FormDialog):
    """Asks whether to include secrets (only offered to who may read them)."""

    def __init__(
        self,
        export: Callable[[bool], Awaitable[None]],
        *,
        secrets_denied: str | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(
            "Export settings",
            "Save every setting to a JSON file that Import can read back.",
            parent,
        )
        self.setObjectName("ExportDialog")
        self._export = export
        self.include_secrets = QCheckBox("Include secrets (written to the file in plain text)")
        self.add_field("include_secrets", "", self.include_secrets)
        if secrets_denied:
            self.include_secrets.setEnabled(False)
            self.include_secrets.setToolTip(secrets_denied)
        self.set_ok_text("Export…")

    def _set_busy(self, busy: bool) -> None:
        super()._set_busy(busy)
        if self.include_secrets.toolTip():
            self.include_secrets.setEnabled(False)

    async def submit(self) -> None:
        await self._export(self.include_secrets.isChecked())


def _read_document(path: Path) -> Any:
    """The JSON in `path`; `InvalidInput` saying why it is not readable as such."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read the file {path.name}: {error}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"the file {path.name} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}); nothing was imported"
        ) from error


class ImportDialog(FormDialog):
    """Previews what a settings file would change (a dry run), then applies it.

    A file that is not JSON, not an export, or holds a value a setting does
    not accept is shown as an error and "Apply" stays disabled: the service
    validates the whole document before writing anything.
    """

    def __init__(
        self,
        client: Client,
        path: Path,
        specs: dict[str, FieldSpec],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Import settings", f"Settings from {path.name}:", parent)
        self.setObjectName("ImportDialog")
        self.setMinimumWidth(620)
        self._client = client
        self._path = path
        self._document: Any = None
        self.applied: list[SettingChange] = []
        self.previewed = False
        self.changes = ChangesModel(specs, self)
        self.table = QTableView(self)
        self.table.setObjectName("ImportPreview")
        self.table.setModel(self.changes)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(180)
        self.form.addRow(self.table)
        self.status = QLabel("Reading the file…", self)
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)
        self.form.addRow(self.status)
        self.reason = self.line_edit("reason", "Reason", f"import of {path.name}")
        self.set_ok_text("Apply")
        self.ok_button().setEnabled(False)
        self.progress.show()
        self.preview_task = run_async(self._preview(), parent=self, what="preview the import")

    async def _preview(self) -> None:
        try:
            self._document = await asyncio.to_thread(_read_document, self._path)
            changes = await self._client.import_settings(self._document, dry_run=True)
        except QuarterdeckError as error:
            self.status.hide()
            self.table.hide()
            self.show_error(reporting.describe(error))
            return
        finally:
            self.progress.hide()
            self.previewed = True
        self.changes.set_changes(changes)
        if changes:
            count = len(changes)
            self.status.setText(
                f"{count} setting{'s' if count != 1 else ''} would change. "
                "Settings not in the file keep their value."
            )
            self.ok_button().setEnabled(True)
        else:
            self.status.setText("The file matches the current settings: nothing to apply.")

    def _set_busy(self, busy: bool) -> None:
        super()._set_busy(busy)
        if not busy and not self.changes.rowCount():
            self.ok_button().setEnabled(False)

    def reject(self) -> None:
        if not self.preview_task.done():
            self.preview_task.cancel()
        super().reject()

    async def submit(self) -> None:
        reason = _reason_required(self.reason.text())
        self.applied = await self._client.import_settings(self._document, reason=reason)
