"""The hosts table: name, status, last seen, CPU and memory, kept live.

`HostsModel` is fed, it does not fetch: `load_snapshot` reads the hosts and
their recent CPU and memory through the client, the panel hands the result to
`apply_snapshot`, then live batches from a `LiveFeed` to `apply_points` and
`apply_changes`. Both return the host names they did not know, so the panel
can reload when a new host starts reporting.

Status is the backend's ("up" while a host reports, "down" after missed
intervals, decided from the live settings), never guessed here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QIcon

from console import theme
from console.client import Client
from console.client.types import METRICS, HostView, SeriesData
from console.models.live import HostChange, LivePoint

CPU = "cpu.percent"
MEMORY = "mem.used_percent"
QUERY_CHUNK = 64
"""Series per query: the backend's limit (MAX_QUERY_SERIES)."""

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
"""Raw values to sort by: seconds, percentages, names in lower case."""
NAME_ROLE = Qt.ItemDataRole.UserRole + 2
"""The host's name, on every column."""

ModelIndex = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    NAME = 0
    STATUS = 1
    LAST_SEEN = 2
    CPU = 3
    MEMORY = 4


HEADERS = {
    Column.NAME: "Host",
    Column.STATUS: "Status",
    Column.LAST_SEEN: "Last seen",
    Column.CPU: "CPU",
    Column.MEMORY: "Memory",
}
STATUS_TEXT = {"up": "Up", "down": "Down"}
STATUS_ICON = {"up": "status-up", "down": "status-down"}
STATUS_TIP = {
    "up": "Reporting: its last point arrived within the expected interval.",
    "down": "Not reporting: several expected points are missing.",
}


def status_icon(status: str) -> QIcon:
    return theme.icon(STATUS_ICON.get(status, "status-offline"))


def seen_ago(seconds: float) -> str:
    """How long ago, for a person: 'just now', '12 s ago', '5 min ago', '3 h ago', '2 d ago'."""
    if seconds < 2:
        return "just now"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


NO_VALUE = "\u2013"
"""An en dash where a value has never been reported."""


def format_percent(metric: str, value: float | None) -> str:
    if value is None:
        return NO_VALUE
    return f"{value:.{METRICS[metric].precision}f} %"


def local_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@dataclass
class HostRow:
    id: int
    name: str
    status: str
    first_seen: float
    last_seen: float
    values: dict[str, float] = field(default_factory=dict)
    """Newest host-wide value per metric (CPU, MEMORY); absent when never reported."""

    @property
    def cpu(self) -> float | None:
        return self.values.get(CPU)

    @property
    def memory(self) -> float | None:
        return self.values.get(MEMORY)


@dataclass(frozen=True, slots=True)
class HostsSnapshot:
    """What `load_snapshot` read: the hosts, their CPU and memory series and recent data."""

    hosts: list[HostView]
    series: dict[tuple[str, str], int]
    """(host, metric) -> id of the host-wide (unlabelled) series."""
    history: dict[int, SeriesData]
    """Series id -> the buckets of the last `span` seconds."""
    start: float
    end: float

    def latest(self, host: str, metric: str) -> float | None:
        series_id = self.series.get((host, metric))
        data = self.history.get(series_id) if series_id is not None else None
        if data is None or not data.buckets:
            return None
        return data.buckets[-1].avg


async def load_snapshot(
    client: Client,
    *,
    metrics: Sequence[str] = (CPU, MEMORY),
    span: float = 300.0,
    max_points: int = 120,
    clock: Callable[[], float] = time.time,
) -> HostsSnapshot:
    """The hosts, and the last `span` seconds of `metrics` for each at `max_points` buckets."""
    hosts, listed = await asyncio.gather(
        client.list_hosts(),
        asyncio.gather(*(client.list_series(metric=metric) for metric in metrics)),
    )
    series = {
        (view.host, view.metric): view.id for views in listed for view in views if not view.labels
    }
    end = clock() + 1.0
    start = end - span
    ids = sorted(series.values())
    chunks = [ids[i : i + QUERY_CHUNK] for i in range(0, len(ids), QUERY_CHUNK)]
    results = await asyncio.gather(
        *(
            client.query_metrics(chunk, start=start, end=end, max_points=max_points)
            for chunk in chunks
        )
    )
    history = {data.series_id: data for result in results for data in result}
    return HostsSnapshot(hosts, series, history, start, end)


class HostsModel(QAbstractTableModel):
    """One row per host, in the order hosts were first listed (a proxy sorts)."""

    def __init__(
        self, parent: QObject | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self._rows: list[HostRow] = []
        self._index: dict[str, int] = {}
        self._clock = clock

    # -- reading ------------------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        column = Column(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[column]
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.CPU, Column.MEMORY):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.parent().isValid():
            return None
        if not (0 <= index.row() < len(self._rows) and 0 <= index.column() < len(Column)):
            return None
        row = self._rows[index.row()]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == SORT_ROLE:
            return self._sort_key(row, column)
        if role == NAME_ROLE:
            return row.name
        if role == Qt.ItemDataRole.DecorationRole and column == Column.STATUS:
            return status_icon(row.status)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == Column.STATUS:
                return STATUS_TIP.get(row.status, row.status)
            if column == Column.LAST_SEEN:
                return f"Last point at {local_time(row.last_seen)}"
            if column == Column.NAME:
                return f"First seen {local_time(row.first_seen)}"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.CPU, Column.MEMORY):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, row: HostRow, column: Column) -> str:
        if column == Column.NAME:
            return row.name
        if column == Column.STATUS:
            return STATUS_TEXT.get(row.status, row.status.capitalize())
        if column == Column.LAST_SEEN:
            return seen_ago(max(0.0, self._clock() - row.last_seen))
        if column == Column.CPU:
            return format_percent(CPU, row.cpu)
        return format_percent(MEMORY, row.memory)

    def _sort_key(self, row: HostRow, column: Column) -> Any:
        if column == Column.NAME:
            return row.name.lower()
        if column == Column.STATUS:
            return row.status
        if column == Column.LAST_SEEN:
            return row.last_seen
        value = row.cpu if column == Column.CPU else row.memory
        # Hosts without a value sort below every measured one.
        return -1.0 if value is None else value

    def host(self, name: str) -> HostRow | None:
        row = self._index.get(name)
        return self._rows[row] if row is not None else None

    def row_of(self, name: str) -> int | None:
        return self._index.get(name)

    @property
    def hosts(self) -> list[HostRow]:
        return list(self._rows)

    # -- feeding ------------------------------------------------------------------

    def apply_snapshot(self, snapshot: HostsSnapshot) -> None:
        self.set_hosts(snapshot.hosts)
        for row in self._rows:
            for metric in (CPU, MEMORY):
                value = snapshot.latest(row.name, metric)
                if value is not None:
                    self._set_value(row, metric, value)

    def set_hosts(self, views: Sequence[HostView]) -> None:
        """Match the rows to `views`: update known hosts, insert new ones, remove gone ones.

        Rows are changed in place rather than reset, so selection and scroll stay.
        """
        wanted = {view.name: view for view in views}
        for row_number in reversed(range(len(self._rows))):
            if self._rows[row_number].name not in wanted:
                self._remove(row_number)
        for view in views:
            number = self._index.get(view.name)
            if number is None:
                row = HostRow(view.id, view.name, view.status, view.first_seen, view.last_seen)
                self._insert(row)
                continue
            row = self._rows[number]
            row.id, row.status, row.first_seen = view.id, view.status, view.first_seen
            row.last_seen = max(row.last_seen, view.last_seen)
            self._changed(number, Column.STATUS, Column.LAST_SEEN)

    def apply_points(self, points: Iterable[LivePoint]) -> set[str]:
        """Newest CPU, memory and last-seen per host; returns hosts not in the table."""
        unknown: set[str] = set()
        touched: dict[int, HostRow] = {}
        for point in points:
            number = self._index.get(point.host)
            if number is None:
                unknown.add(point.host)
                continue
            row = self._rows[number]
            row.last_seen = max(row.last_seen, point.ts)
            if point.unlabelled and point.metric in (CPU, MEMORY):
                row.values[point.metric] = point.value
            touched[number] = row
        for number in touched:
            self._changed(number, Column.LAST_SEEN, Column.MEMORY)
        return unknown

    def apply_changes(self, changes: Iterable[HostChange]) -> set[str]:
        """Status changes; a deleted host's row goes. Returns hosts not in the table."""
        unknown: set[str] = set()
        for change in changes:
            number = self._index.get(change.host)
            if change.status == "deleted":
                if number is not None:
                    self._remove(number)
                continue
            if number is None:
                unknown.add(change.host)
                continue
            row = self._rows[number]
            if row.status != change.status:
                row.status = change.status
                self._changed(number, Column.STATUS, Column.STATUS)
        return unknown

    def tick(self) -> None:
        """Refresh the "last seen" texts (call once a second): they age without new data."""
        if self._rows:
            self.dataChanged.emit(
                self.index(0, Column.LAST_SEEN),
                self.index(len(self._rows) - 1, Column.LAST_SEEN),
                [Qt.ItemDataRole.DisplayRole],
            )

    def _set_value(self, row: HostRow, metric: str, value: float) -> None:
        row.values[metric] = value
        number = self._index[row.name]
        self._changed(number, Column.CPU, Column.MEMORY)

    def _changed(self, number: int, first: Column, last: Column) -> None:
        self.dataChanged.emit(self.index(number, first), self.index(number, last))

    def _insert(self, row: HostRow) -> None:
        number = len(self._rows)
        self.beginInsertRows(QModelIndex(), number, number)
        self._rows.append(row)
        self._index[row.name] = number
        self.endInsertRows()

    def _remove(self, number: int) -> None:
        self.beginRemoveRows(QModelIndex(), number, number)
        del self._rows[number]
        self._index = {row.name: i for i, row in enumerate(self._rows)}
        self.endRemoveRows()


class HostsFilter(QSortFilterProxyModel):
    """Sorts by raw values (not the texts) and filters on the host name."""

    def __init__(self, source: HostsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSourceModel(source)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(Column.NAME)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)
