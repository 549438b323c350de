"""Tables of setting values over time: one setting's versions, and an import's changes.

Both draw values through the setting's `FieldSpec`, so units, on/off and
masking read the same as in the editors, and a secret's value is never
put in a cell (even for someone allowed to read it: secrets are shown only
on request, in the editor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from console.client.types import SettingChange, SettingVersionView
from console.models.settingspec import FieldSpec, when

Index = QModelIndex | QPersistentModelIndex
VERSION_ROLE = Qt.ItemDataRole.UserRole
"""A history row's version number (0 for the default)."""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    version: int
    value: Any
    masked: bool
    actor: str
    reason: str
    created_at: float | None

    @property
    def is_default(self) -> bool:
        return self.version == 0


class SettingHistoryModel(QAbstractTableModel):
    """One setting's versions, newest first, then its default as version 0.

    The default row is what a rollback to version 0 writes back (the
    service supports it), so "back to the default" is one more row to pick.
    """

    HEADERS = ("Version", "Value", "Changed by", "Reason", "When")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.spec: FieldSpec | None = None
        self._rows: list[HistoryRow] = []

    def set_history(self, spec: FieldSpec | None, versions: list[SettingVersionView]) -> None:
        self.beginResetModel()
        self.spec = spec
        self._rows = [
            HistoryRow(v.version, v.value, v.masked, v.actor, v.reason, v.created_at)
            for v in sorted(versions, key=lambda v: v.version, reverse=True)
        ]
        if spec is not None:
            self._rows.append(HistoryRow(0, spec.default, spec.secret, "", "default", None))
        self.endResetModel()

    def row_at(self, row: int) -> HistoryRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, version: int) -> int:
        for row, entry in enumerate(self._rows):
            if entry.version == version:
                return row
        return -1

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(self.HEADERS)
        ):
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self.spec is None:
            return None
        entry = self._rows[index.row()]
        if role == VERSION_ROLE:
            return entry.version
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(entry, index.column())
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 3 and entry.reason:
            return entry.reason
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, entry: HistoryRow, column: int) -> str:
        assert self.spec is not None
        if column == 0:
            return "default" if entry.is_default else str(entry.version)
        if column == 1:
            if entry.is_default and self.spec.secret:
                return "(not set)"
            return self.spec.format(entry.value, masked=entry.masked)
        if column == 2:
            return entry.actor or "—"
        if column == 3:
            return entry.reason
        return when(entry.created_at)


class ChangesModel(QAbstractTableModel):
    """What an import would change: setting, its current value, the file's value."""

    HEADERS = ("Setting", "Current", "From the file")

    def __init__(self, specs: dict[str, FieldSpec], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._specs = specs
        self._changes: list[SettingChange] = []

    def set_changes(self, changes: list[SettingChange]) -> None:
        self.beginResetModel()
        self._changes = list(changes)
        self.endResetModel()

    def changes(self) -> list[SettingChange]:
        return list(self._changes)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._changes)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(self.HEADERS)
        ):
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        change = self._changes[index.row()]
        spec = self._specs.get(change.key)
        if role == Qt.ItemDataRole.DisplayRole:
            if index.column() == 0:
                return change.key
            value = change.old if index.column() == 1 else change.new
            if spec is None:
                return "—" if value is None else str(value)
            if change.masked or spec.secret:
                return "(secret changes)"
            return spec.format(value)
        if role == Qt.ItemDataRole.ToolTipRole and spec is not None:
            tip = spec.description
            if spec.restart_required:
                tip += "\nTakes effect after a restart."
            return tip
        return None
