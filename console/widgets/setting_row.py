"""One setting in the configuration form: what it is, its editor, its state.

The row shows the setting's title, description, "Restart required" badge,
editor and bounds, then one status line: why the typed value is refused
(in red, the Save button is blocked meanwhile), that someone changed it
elsewhere while it was being edited, that it is modified, or who wrote the
current version and when. It forwards edits to `SettingsState` and redraws
from it; it decides nothing itself.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from console import reporting
from console.models.settings import SettingField, SettingsState
from console.models.settingspec import when
from console.widgets.setting_editors import SecretEditor, SettingEditor, editor_for


def _restyle(widget: QWidget, name: str, value: Any) -> None:
    """Set a property the stylesheet selects on, and make the style see it."""
    if widget.property(name) == value:
        return
    widget.setProperty(name, value)
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class SettingRow(QFrame):
    activated = Signal(str)
    """The person clicked the row or entered its editor: show its history."""

    def __init__(
        self,
        state: SettingsState,
        key: str,
        *,
        denied: str | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("SettingRow")
        self.setProperty("current", False)
        self.key = key
        self._state = state
        field = state.field(key)
        spec = field.spec
        heading = self._heading()
        self.description = QLabel(spec.description, self)
        self.description.setWordWrap(True)
        self.editor: SettingEditor = editor_for(spec, self)
        self.editor.set_writable(denied is None, denied or "")
        self.bounds = QLabel(spec.bounds(), self)
        self.bounds.setObjectName("Muted")
        self.revert_button = QPushButton("Revert", self)
        self.revert_button.setToolTip("Drop your edit and show the current value.")
        self.revert_button.clicked.connect(lambda: state.discard(key))
        self.status = QLabel(self)
        self.status.setObjectName("RowStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QGridLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setVerticalSpacing(4)
        layout.addLayout(heading, 0, 0, 1, 3)
        layout.addWidget(self.description, 1, 0, 1, 3)
        layout.addWidget(self.editor, 2, 0)
        layout.addWidget(self.bounds, 2, 1)
        layout.addWidget(self.revert_button, 2, 2)
        layout.addWidget(self.status, 3, 0, 1, 3)
        layout.setColumnStretch(0, 1)

        self._in_editor: tuple[Any, bool, bool] | None = None
        self._error: str | None = None
        self.editor.edited.connect(self._edited)
        self.editor.withdrawn.connect(lambda: state.discard(key))
        for widget in self.editor.inputs():
            widget.installEventFilter(self)
        self.refresh()

    def _heading(self) -> QHBoxLayout:
        spec = self._state.field(self.key).spec
        self.title = QLabel(spec.title, self)
        self.title.setObjectName("SettingTitle")
        self.title.setToolTip(self.key)
        self.key_label = QLabel(self.key, self)
        self.key_label.setObjectName("Muted")
        self.key_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.restart_badge = QLabel("Restart required", self)
        self.restart_badge.setObjectName("Badge")
        self.restart_badge.setToolTip("A new value takes effect after the server restarts.")
        self.restart_badge.setVisible(spec.restart_required)
        heading = QHBoxLayout()
        heading.setSpacing(10)
        heading.addWidget(self.title)
        heading.addWidget(self.key_label)
        heading.addWidget(self.restart_badge)
        heading.addStretch(1)
        return heading

    # -- from the person ----------------------------------------------------------------

    def _edited(self, value: Any, problem: str | None) -> None:
        self._error = None
        view = self._state.field(self.key).view
        self._in_editor = None if problem is not None else (value, view.is_set, view.masked)
        self._state.edit(self.key, value, problem)
        self.activated.emit(self.key)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn:
            self.activated.emit(self.key)
        return False

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.activated.emit(self.key)
        super().mousePressEvent(event)

    # -- from the state -----------------------------------------------------------------

    def set_current(self, current: bool) -> None:
        _restyle(self, "current", current)

    def set_error(self, message: str | None) -> None:
        """A refusal from the service for this field (shown until the next edit)."""
        self._error = message
        self.refresh()

    def refresh(self) -> None:
        field = self._state.field(self.key)
        if not field.dirty:
            loaded = (field.view.value, field.view.is_set, field.view.masked)
            editing_secret = isinstance(self.editor, SecretEditor) and self.editor.replacing
            if loaded != self._in_editor or editing_secret:
                self.editor.end_edit()
                self.editor.set_value(
                    field.view.value, is_set=field.view.is_set, masked=field.view.masked
                )
                self._in_editor = loaded
        self.revert_button.setVisible(field.dirty)
        tone, text = self._status(field)
        self.status.setText(text)
        _restyle(self.status, "tone", tone)
        _restyle(self, "state", "dirty" if field.dirty else "")

    def _status(self, field: SettingField) -> tuple[str, str]:
        if field.problem is not None:
            return "error", f"{reporting.sentence(field.problem)} This value cannot be saved."
        if self._error:
            return "error", self._error
        if field.elsewhere is not None:
            theirs = field.elsewhere
            value = field.spec.format(theirs.value, is_set=theirs.is_set, masked=theirs.masked)
            return "warning", (
                f"Changed elsewhere by {theirs.updated_by or 'someone'} to {value} "
                f"(version {theirs.version}) while you were editing. Saving will ask which "
                "to keep."
            )
        if field.dirty:
            return "notice", "Modified, not saved yet."
        view = field.view
        if view.version == 0:
            return "muted", "Default value, never changed."
        return (
            "muted",
            f"Version {view.version} · {view.updated_by or '—'} · {when(view.updated_at)}",
        )
