"""The audit log as a lazily paged table model, and its CSV export.

The log may hold millions of entries, so the model never asks for all of
them. It holds the pages the view has scrolled to, newest first, and asks
`Client.list_audit` for the next (older) page only when the view reaches
the last loaded row: Qt calls `canFetchMore`/`fetchMore` for that. Loading
is asynchronous: `fetchMore` starts a task and returns at once; when the
page arrives its rows are appended with `beginInsertRows`, so the view
keeps its place and selection. At most one page load runs at a time (the
view calls `fetchMore` again while it waits, on every scroll), and a new
query (`set_query`) cancels the load in flight and starts over: a page of
the old filter can never land in the new table.

Each page is `PAGE_SIZE` rows, enough to fill any window several times
over, small enough that a page costs a few milliseconds to fetch and
format. Display strings are formatted once when a page arrives, not on
every paint.

The columns are declared once (`COLUMNS`, `CSV_FIELDS`), for the table and
for the export.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QDateTime,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from console.asyncslots import run_async
from console.client import Client
from console.client.errors import QuarterdeckError
from console.client.types import AuditEntryView, AuditPage, AuditQuery

PAGE_SIZE = 200
"""Rows per page of the table: a few screens of rows per round trip."""
EXPORT_PAGE_SIZE = 1000
"""Rows per page of a CSV export (the service's maximum): fewer round trips."""
TOOLTIP_LIMIT = 4000
"""Characters of details shown in a tooltip; the detail pane shows them all."""

ENTRY_ROLE = Qt.ItemDataRole.UserRole
"""`data(index, ENTRY_ROLE)` is the row's `AuditEntryView`."""

AnyIndex = QModelIndex | QPersistentModelIndex


def local_time(ts: float) -> str:
    """Epoch seconds as the user's local date and time, to the second."""
    moment = QDateTime.fromMSecsSinceEpoch(round(ts * 1000)).toLocalTime()
    return moment.toString("yyyy-MM-dd HH:mm:ss")


def utc_time(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds: unambiguous in files."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compact_json(details: dict[str, Any]) -> str:
    return json.dumps(details, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def pretty_json(details: dict[str, Any]) -> str:
    return json.dumps(details, indent=2, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    text: Callable[[AuditEntryView], str]
    width: int
    """Initial width in pixels: the view never measures every row (ResizeToContents would)."""


COLUMNS: tuple[Column, ...] = (
    Column("time", "Time", lambda e: local_time(e.ts), 150),
    Column("actor", "Actor", lambda e: e.actor, 90),
    Column("action", "Action", lambda e: e.action, 140),
    Column("target", "Target", lambda e: e.target, 160),
    Column("source", "Source", lambda e: e.source, 90),
    Column("correlation_id", "Correlation id", lambda e: e.correlation_id or "", 110),
    Column("details", "Details", lambda e: compact_json(e.details), 240),
)

CSV_FIELDS: tuple[tuple[str, Callable[[AuditEntryView], object]], ...] = (
    ("id", lambda e: e.id),
    ("time_utc", lambda e: utc_time(e.ts)),
    ("actor", lambda e: e.actor),
    ("actor_id", lambda e: "" if e.actor_id is None else e.actor_id),
    ("action", lambda e: e.action),
    ("target", lambda e: e.target),
    ("source", lambda e: e.source),
    ("correlation_id", lambda e: e.correlation_id or ""),
    ("details", lambda e: compact_json(e.details)),
)
"""The export's header and cells: UTC times and the ids a table leaves out."""


@dataclass(frozen=True, slots=True)
class _Row:
    entry: AuditEntryView
    texts: tuple[str, ...]


def _row(entry: AuditEntryView) -> _Row:
    return _Row(entry, tuple(column.text(entry) for column in COLUMNS))


class AuditTableModel(QAbstractTableModel):
    """The entries matching one `AuditQuery`, newest first, loaded a page at a time."""

    loading_changed = Signal(bool)
    """A page load started (True) or ended (False)."""
    load_failed = Signal(object)
    """A `QuarterdeckError` ended a load (e.g. `Forbidden`); no retry until `reload`."""
    page_loaded = Signal()
    """A page arrived (possibly empty); `exhausted` says whether more exist."""

    def __init__(
        self, client: Client, *, page_size: int = PAGE_SIZE, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._client = client
        self._page_size = page_size
        self._query = AuditQuery()
        self._rows: list[_Row] = []
        self._cursor: int | None = None
        self._exhausted = False
        self._failed: QuarterdeckError | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        # The destructor may run while a page is on its way: cancel it so
        # the task never touches a deleted model. (A closure over a holder,
        # not over `self`: `destroyed` fires when the Python side is gone.)
        holder: list[asyncio.Task[None] | None] = [None]
        self._holder = holder
        self.destroyed.connect(lambda *_: holder[0] and holder[0].cancel())

    # -- state --------------------------------------------------------------------------

    @property
    def query(self) -> AuditQuery:
        return self._query

    @property
    def loading(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def exhausted(self) -> bool:
        """True once the oldest matching entry is loaded."""
        return self._exhausted

    @property
    def error(self) -> QuarterdeckError | None:
        """What stopped the last load, until the next `set_query`/`reload`."""
        return self._failed

    def newest_id(self) -> int:
        """Id of the newest loaded entry; 0 when none is loaded."""
        return self._rows[0].entry.id if self._rows else 0

    def entry(self, row: int) -> AuditEntryView:
        return self._rows[row].entry

    def entries(self) -> list[AuditEntryView]:
        return [row.entry for row in self._rows]

    # -- querying -----------------------------------------------------------------------

    def set_query(self, query: AuditQuery) -> None:
        """Show the entries matching `query`: drop the rows, cancel any load, load page one."""
        self._query = query
        self.reload()

    def reload(self) -> None:
        """Start over with the same query (new entries, or after an error)."""
        self._cancel()
        self.beginResetModel()
        self._rows = []
        self._cursor = None
        self._exhausted = False
        self._failed = None
        self.endResetModel()
        self._started = True
        self._load()

    async def aclose(self) -> None:
        """Cancel the load in flight and wait for it to end (the panel is closing)."""
        task = self._task
        self._cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            self.loading_changed.emit(False)
        self._task = None
        self._holder[0] = None

    # -- lazy paging (Qt's protocol) ------------------------------------------------------

    def canFetchMore(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        if parent.isValid() or not self._started:
            return False
        return not self._exhausted and self._failed is None

    def fetchMore(self, parent: AnyIndex = QModelIndex()) -> None:  # noqa: B008
        """Start loading the next page; a no-op while one is already on its way."""
        if not self.canFetchMore(parent) or self.loading:
            return
        self._load()

    def _load(self) -> None:
        before = self._cursor
        task = run_async(self._fetch(self._query, before), what="load the audit log")
        self._task = task
        self._holder[0] = task
        self.loading_changed.emit(True)

    async def _fetch(self, query: AuditQuery, before: int | None) -> None:
        me = asyncio.current_task()
        try:
            page: AuditPage = await self._client.list_audit(
                query, before_id=before, limit=self._page_size
            )
        except asyncio.CancelledError:
            raise  # `_cancel` already reset the state, maybe for a newer load
        except QuarterdeckError as error:
            # Expected (Forbidden, bad filter, server down): stop paging until
            # `reload`, so the view's next scroll does not hammer the backend.
            if self._task is me:
                self._failed = error
                self._done()
                self.load_failed.emit(error)
            return
        except BaseException:
            if self._task is me:
                self._done()
            raise
        # A cancelled load never gets here: a page of an old query cannot land in a new table.
        self._done()
        self._append(page)
        self.page_loaded.emit()

    def _done(self) -> None:
        self._task = None
        self._holder[0] = None
        self.loading_changed.emit(False)

    def _append(self, page: AuditPage) -> None:
        self._cursor = page.next_cursor
        self._exhausted = page.next_cursor is None
        if page.entries:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(page.entries) - 1)
            self._rows.extend(_row(entry) for entry in page.entries)
            self.endInsertRows()

    # -- the table ------------------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.texts[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            if column.key == "details":
                text = pretty_json(row.entry.details)
                if len(text) > TOOLTIP_LIMIT:
                    text = text[:TOOLTIP_LIMIT] + "\n… (see the detail pane for the rest)"
                return text
            if column.key == "time":
                return f"{utc_time(row.entry.ts)} (UTC) · entry #{row.entry.id}"
            return row.texts[index.column()] or None
        if role == ENTRY_ROLE:
            return row.entry
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section].title if 0 <= section < len(COLUMNS) else None
        return section + 1


# -- CSV export -------------------------------------------------------------------------

ExportProgress = Callable[[int, float], None]
"""Called after each page with (rows written, fraction of the log scanned, 0..1)."""


async def export_csv(
    client: Client,
    query: AuditQuery,
    path: Path,
    *,
    on_progress: ExportProgress | None = None,
    page_size: int = EXPORT_PAGE_SIZE,
) -> int:
    """Write every entry matching `query` to `path` as CSV with a header; return the row count.

    Pages through the log newest first, like the table, without holding it
    in memory. Written to a temporary file beside `path` and renamed at the
    end, so a cancelled or failed export leaves no half file behind (and an
    existing file is only replaced by a complete one).

    The progress fraction is by entry id: pages go from the newest id down
    to 1, so the cursor's distance from the top is how much of the log the
    export has scanned, whatever the filter keeps of it.
    """
    partial = path.with_name(f".{path.name}.partial")
    written = 0
    top: int | None = None
    try:
        with partial.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow([name for name, _ in CSV_FIELDS])
            before: int | None = None
            while True:
                page = await client.list_audit(query, before_id=before, limit=page_size)
                for entry in page.entries:
                    writer.writerow([cell(entry) for _, cell in CSV_FIELDS])
                written += len(page.entries)
                if top is None and page.entries:
                    top = page.entries[0].id
                before = page.next_cursor
                if before is None:
                    break
                if on_progress is not None and top:
                    on_progress(written, min(1.0, max(0.0, (top - before) / top)))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if on_progress is not None:
        on_progress(written, 1.0)
    return written
