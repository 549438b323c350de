"""The Hosts panel: every host in a sortable, filterable table, and the chosen one's charts.

The table is a `HostsModel` behind a `HostsFilter`; the right side is a
`HostPage`. One `LiveFeed` serves both: its batches update the table's
CPU, memory and last-seen and go on to the page's charts. A host the table
does not know (one that just started reporting) triggers a reload of the
list; a lost stream (`reset`) reloads everything. Reading hosts needs
`hosts:read`; every role has it, so nothing here is disabled by role.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from console.asyncslots import SerialLoad
from console.client import Client
from console.client.types import MeView
from console.models.hosts import NAME_ROLE, Column, HostsFilter, HostsModel, load_snapshot
from console.models.live import HostChange, LiveFeed, LivePoint
from console.panels.hostpage import HostPage

RELOAD_DELAY_MS = 500
"""Wait this long after an unknown host shows up, so a cluster starting at once reloads once."""

COLUMN_WIDTHS = {Column.STATUS: 70, Column.LAST_SEEN: 86, Column.CPU: 62, Column.MEMORY: 70}


class HostsPanel(QWidget):
    def __init__(
        self,
        client: Client,
        me: MeView,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("HostsPanel")
        self._client = client
        self._clock = clock
        self._loaded = False
        self._pending_reveal: str | None = None
        self.model = HostsModel(self, clock=clock)
        self.proxy = HostsFilter(self.model, self)

        left = self._build_list()
        self.page = HostPage(client, parent=self)
        self.empty_label = QLabel(self)
        self.empty_label.setObjectName("Muted")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.page)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.stack)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([420, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

        self.model.rowsInserted.connect(self._count_changed)
        self.model.rowsRemoved.connect(self._count_changed)
        self.proxy.rowsInserted.connect(self._count_changed)
        self.proxy.rowsRemoved.connect(self._count_changed)
        self.proxy.modelReset.connect(self._count_changed)
        self._count_changed()

        self.feed = LiveFeed(client, self)
        self.feed.points_arrived.connect(self._on_points)
        self.feed.hosts_changed.connect(self._on_changes)
        self.feed.reset.connect(self.reload_all)
        self._tick = QTimer(self, interval=1000)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._reload_later = QTimer(self, singleShot=True, interval=RELOAD_DELAY_MS)
        self._reload_later.timeout.connect(self.reload)
        self.feed.start()
        self.reload()

    def _build_list(self) -> QWidget:
        """The filter, the table and the host count."""
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setObjectName("HostFilter")
        self.filter_edit.setPlaceholderText("Filter hosts by name")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView(self)
        self.table.setObjectName("HostTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.NAME, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(48)
        # Fixed widths: sizing to contents would measure every row at every live update.
        for column, width in COLUMN_WIDTHS.items():
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.count_label = QLabel(self)
        self.count_label.setObjectName("Muted")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("HostsLoading")
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(4)
        self.progress.setToolTip("Loading the hosts…")
        self.progress.setVisible(False)
        self._loads = SerialLoad(
            self, self._load, what="load the hosts", busy=self.progress.setVisible
        )

        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(8, 8, 0, 8)
        left_layout.setSpacing(6)
        left_layout.addWidget(self.filter_edit)
        left_layout.addWidget(self.progress)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.count_label)

        return left

    # -- loading ------------------------------------------------------------------

    def reload(self) -> None:
        """Read the hosts (and their latest CPU and memory) again."""
        self._loads.request()

    def reload_all(self) -> None:
        """Events were lost: the table and the charts read everything again."""
        self.reload()
        self.page.reload()

    async def _load(self) -> None:
        snapshot = await load_snapshot(self._client, span=60.0, max_points=60, clock=self._clock)
        self.model.apply_snapshot(snapshot)
        self._loaded = True
        self._count_changed()
        if self._pending_reveal is not None and self.model.row_of(self._pending_reveal) is not None:
            self.reveal(self._pending_reveal)
        elif self.page.host is None and self.proxy.rowCount() > 0:
            self._select(self.proxy.index(0, Column.NAME))

    # -- selection ----------------------------------------------------------------

    def reveal(self, target: str) -> None:
        """Select the host `target` and show its charts (the overview's cards do this)."""
        row = self.model.row_of(target)
        if row is None:
            self._pending_reveal = target
            return
        self._pending_reveal = None
        source = self.model.index(row, Column.NAME)
        index = self.proxy.mapFromSource(source)
        if not index.isValid():
            self.filter_edit.clear()
            index = self.proxy.mapFromSource(source)
        self._select(index)

    def _select(self, index: QModelIndex) -> None:
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)

    def _current_changed(
        self, current: QModelIndex | QPersistentModelIndex, _previous: object
    ) -> None:
        if not current.isValid():
            return
        name = str(current.data(NAME_ROLE))
        if name != self.page.host:
            self.page.show_host(name)
            self.page.set_row(self.model.host(name), self._clock())
        self.stack.setCurrentWidget(self.page)

    def current_host(self) -> str | None:
        return self.page.host

    def _count_changed(self, *_: object) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        noun = "host" if total == 1 else "hosts"
        self.count_label.setText(
            f"{total} {noun}" if shown == total else f"{shown} of {total} {noun}"
        )
        if self.page.host is None:
            self.empty_label.setText(
                "Choose a host to see its charts."
                if total
                else "No host has reported yet.\n\nThe embedded backend reports this computer; "
                "a cluster's nodes appear once their agents push metrics."
                if self._loaded
                else ""
            )
            self.stack.setCurrentWidget(self.empty_label)

    # -- live ---------------------------------------------------------------------

    def _on_points(self, points: list[LivePoint]) -> None:
        if not self._loaded:
            return  # the snapshot being read covers them
        if self.model.apply_points(points):
            self._reload_later.start()
        self.page.apply_points(points)
        self.page.set_row(self.model.host(self.page.host or ""), self._clock())

    def _on_changes(self, changes: list[HostChange]) -> None:
        if not self._loaded:
            return
        shown = self.page.host
        if self.model.apply_changes(changes):
            self._reload_later.start()
        if shown is not None and self.page.host == shown and self.model.row_of(shown) is None:
            # The host shown was deleted: say so rather than show charts of nothing.
            self.page.clear()
            self.table.clearSelection()
            self.empty_label.setText(f"{shown} was deleted.")
            self.stack.setCurrentWidget(self.empty_label)
        else:
            self.page.set_row(self.model.host(self.page.host or ""), self._clock())

    def _on_tick(self) -> None:
        self.model.tick()
        self.page.set_row(self.model.host(self.page.host or ""), self._clock())

    async def shutdown(self) -> None:
        await self._loads.stop()  # first: no load starts while the rest stops
        self._tick.stop()
        self._reload_later.stop()
        await self.feed.stop()
        await self.page.shutdown()
