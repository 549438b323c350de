"""A table of records (one row per object with an id), its columns declared as data.

Panels list users, API keys, hosts…: each a list of pydantic views that is
reloaded as a whole. `RecordTableModel.set_records` merges a fresh list into
the rows in place (removed rows go, changed rows emit `dataChanged`, new
rows are appended) instead of resetting the model, so the view keeps its
selection, scroll position and sort through every reload. Sorting and
filtering belong to a `QSortFilterProxyModel` on top; it sorts by
`SORT_ROLE`, the column's typed sort key, so dates sort as dates and not as
their text.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import QApplication

R = TypeVar("R")
Index = QModelIndex | QPersistentModelIndex

SORT_ROLE = Qt.ItemDataRole.UserRole
"""The column's sort key: a str, int or float that orders as a person expects."""
RECORD_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's record itself, for views and actions that need more than a cell."""

NEVER = "—"
"""What a missing time shows (never used, not revoked)."""


def format_time(epoch: float | None) -> str:
    """Epoch seconds as local date and minute; `NEVER` for None."""
    if epoch is None:
        return NEVER
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M")


def full_time(epoch: float | None) -> str:
    """The tooltip of a time cell: to the second, with the UTC offset."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


@dataclass(frozen=True, slots=True)
class Column(Generic[R]):
    """One column: its title and how a record shows, sorts and explains itself there."""

    title: str
    text: Callable[[R], str]
    sort_key: Callable[[R], str | int | float] | None = None
    """None: the text, case-folded."""
    tooltip: Callable[[R], str] | None = None

    def key_of(self, record: R) -> str | int | float:
        if self.sort_key is not None:
            return self.sort_key(record)
        return self.text(record).casefold()


def time_column(title: str, value: Callable[[R], float | None]) -> Column[R]:
    """A time column: local minute shown, full time in the tooltip, sorted by time (None first)."""

    def sort_key(record: R) -> float:
        epoch = value(record)
        return -1.0 if epoch is None else epoch

    return Column(
        title,
        lambda record: format_time(value(record)),
        sort_key=sort_key,
        tooltip=lambda record: full_time(value(record)),
    )


class RecordTableModel(QAbstractTableModel, Generic[R]):
    """Rows of records, columns from data; flat and read-only (edits go through the client).

    `muted(record)` greys a row out (a disabled user, a revoked key) and
    `bold(record)` emphasises one (the signed-in user's own row).
    """

    def __init__(
        self,
        columns: Sequence[Column[R]],
        key: Callable[[R], Hashable],
        *,
        muted: Callable[[R], bool] | None = None,
        bold: Callable[[R], bool] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._columns = tuple(columns)
        self._key = key
        self._muted = muted
        self._bold = bold
        self._records: list[R] = []

    # -- the records ------------------------------------------------------------------

    @property
    def columns(self) -> tuple[Column[R], ...]:
        return self._columns

    def records(self) -> list[R]:
        return list(self._records)

    def record(self, row: int) -> R:
        return self._records[row]

    def row_of(self, key: Hashable) -> int | None:
        for row, record in enumerate(self._records):
            if self._key(record) == key:
                return row
        return None

    def set_records(self, records: Iterable[R]) -> None:
        """Merge `records` in: keep the rows that stay, so selections survive a reload."""
        fresh = {self._key(record): record for record in records}
        for row in range(len(self._records) - 1, -1, -1):
            if self._key(self._records[row]) not in fresh:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._records[row]
                self.endRemoveRows()
        last_column = len(self._columns) - 1
        for row, old in enumerate(self._records):
            new = fresh.pop(self._key(old))
            if new != old:
                self._records[row] = new
                self.dataChanged.emit(self.index(row, 0), self.index(row, last_column))
        if fresh:
            first = len(self._records)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self._records.extend(fresh.values())
            self.endInsertRows()

    def upsert(self, record: R) -> None:
        """Show one record the client just returned (after one's own action) before the reload."""
        key = self._key(record)
        self.set_records([record if self._key(old) == key else old for old in self._records])
        if self.row_of(key) is None:
            self.set_records([*self._records, record])

    def remove(self, key: Hashable) -> None:
        """Drop one record (deleted by one's own action) before the reload confirms it."""
        self.set_records([record for record in self._records if self._key(record) != key])

    # -- QAbstractTableModel ----------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._records):
            return None
        record = self._records[index.row()]
        column = self._columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(record)
        if role == SORT_ROLE:
            return column.key_of(record)
        if role == RECORD_ROLE:
            return record
        if role == Qt.ItemDataRole.ToolTipRole:
            return column.tooltip(record) if column.tooltip is not None else None
        if role == Qt.ItemDataRole.ForegroundRole and self._muted is not None:
            if self._muted(record):
                return QApplication.palette().brush(
                    QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text
                )
            return None
        if role == Qt.ItemDataRole.FontRole and self._bold is not None and self._bold(record):
            font = QFont()
            font.setBold(True)
            return font
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(self._columns)
        ):
            return self._columns[section].title
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemNeverHasChildren
        )
