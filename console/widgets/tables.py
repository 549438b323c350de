"""The pieces every list panel shares: its table view, busy bar and message line.

One place decides how a record table behaves (whole rows, one at a time,
sortable by clicking a header, read-only cells, a context menu) so that
every panel's table behaves alike.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableView,
    QWidget,
)


def record_table(
    parent: QWidget,
    model: QAbstractItemModel,
    name: str,
    *,
    sort_column: int = 0,
    order: Qt.SortOrder = Qt.SortOrder.AscendingOrder,
) -> QTableView:
    """A read-only table of whole-row, single selection, sorted by `sort_column`."""
    table = QTableView(parent)
    table.setObjectName(name)
    table.setModel(model)
    table.setSortingEnabled(True)
    table.sortByColumn(sort_column, order)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.setShowGrid(False)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    header.setStretchLastSection(True)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    return table


def fit_columns(table: QTableView, padding: int = 24) -> None:
    """Size every column to its contents plus some air (once the first rows are in)."""
    table.resizeColumnsToContents()
    header = table.horizontalHeader()
    for column in range(header.count() - 1):
        header.resizeSection(column, header.sectionSize(column) + padding)


def busy_bar(parent: QWidget) -> QProgressBar:
    """A thin indeterminate bar, hidden until a load runs."""
    bar = QProgressBar(parent)
    bar.setObjectName("BusyBar")
    bar.setRange(0, 0)
    bar.setTextVisible(False)
    bar.setMaximumHeight(4)
    bar.hide()
    return bar


def message_line(parent: QWidget) -> QLabel:
    """A red line above the table for what went wrong (a failed load), hidden until then."""
    label = QLabel(parent)
    label.setObjectName("ErrorLabel")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label
