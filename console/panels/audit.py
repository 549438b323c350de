"""The Audit panel: the log, filtered and lazily paged; chain verification; CSV export.

What it shows comes from `console.models.audit.AuditTableModel`, which
loads a page at a time as the table scrolls, so a log of millions of
entries opens as fast as one of ten. Filters (actor, action, time range,
free text) are applied by the backend, 300 ms after the last keystroke
(a debounce: typing "operator" does not send eight queries).

New entries: the panel follows the `audit` event stream but does not push
rows into the table while someone reads it (rows jumping under the cursor
lose the reader's place, and an event does not carry everything the
filters match on). Instead it asks the backend, at most once a second,
how many entries newer than the top row match the current filters, and
offers them in a bar above the table ("3 new entries · Show"); one click
reloads from the top.

Viewers have no audit permission: the navigation entry is disabled for
them, and should the panel still be reached (a role changed meanwhile),
it says so in place of the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QDateTime, QItemSelection, QModelIndex, Qt, QTimer
from PySide6.QtGui import QFontDatabase, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from console import reporting
from console.asyncslots import run_async
from console.client import Client
from console.client.errors import Forbidden, QuarterdeckError
from console.client.types import (
    AuditEntryView,
    AuditQuery,
    AuditVerification,
    MeView,
    Permission,
    StreamReset,
)
from console.models.audit import (
    COLUMNS,
    EXPORT_PAGE_SIZE,
    AuditTableModel,
    export_csv,
    local_time,
    pretty_json,
    utc_time,
)
from console.panels.placeholder import PlaceholderPanel
from console.widgets.actions import ActionSet, ActionSpec
from console.widgets.forms import wait_closed
from console.widgets.tables import busy_bar, message_line

log = logging.getLogger(__name__)
T = TypeVar("T")

DEBOUNCE_MS = 300
"""Filters apply this long after the last change."""
PROBE_MS = 1000
"""At most one "how many new entries?" query per this interval."""
PROBE_LIMIT = 100
"""Counted exactly up to this many; more shows as "100+"."""

PRESETS: tuple[tuple[str, float | None], ...] = (
    ("Any time", None),
    ("Last hour", 3600.0),
    ("Last 24 hours", 86400.0),
    ("Last 7 days", 7 * 86400.0),
    ("Last 30 days", 30 * 86400.0),
    ("Custom range", None),
)
"""Time presets: label and how far back from now; "Custom range" enables the editors."""
CUSTOM = len(PRESETS) - 1
DATE_FORMAT = "yyyy-MM-dd HH:mm:ss"

FORBIDDEN_MESSAGE = (
    "Your role cannot read the audit log. Viewers have no access to it; "
    "ask an admin if you need it."
)
DENIED = "Your role cannot read the audit log (viewers have no access to it)."


@dataclass(frozen=True, slots=True)
class AuditContext:
    """What the panel's actions depend on besides the role."""

    forbidden: bool = False
    """The backend refused the log (the role changed since sign-in)."""
    exporting: bool = False
    verifying: bool = False


def _readable(context: AuditContext) -> str | None:
    return FORBIDDEN_MESSAGE if context.forbidden else None


AUDIT_ACTIONS: tuple[ActionSpec[AuditContext], ...] = (
    ActionSpec(
        key="refresh",
        text="Refresh",
        tip="Load the newest entries again, keeping the filters.",
        requires=Permission.AUDIT_READ,
        denied=DENIED,
        icon="action-refresh",
        shortcut=QKeySequence.StandardKey.Refresh,
    ),
    ActionSpec(
        key="export",
        text="Export CSV…",
        tip="Save every entry matching the filters (not only those loaded) as a CSV file.",
        requires=Permission.AUDIT_READ,
        denied=DENIED,
        blocked=lambda c: _readable(c) or ("An export is running." if c.exporting else None),
        icon="action-export",
    ),
    ActionSpec(
        key="verify",
        text="Verify chain",
        tip="Check the hash chain of the whole log: an edited or deleted entry breaks it.",
        requires=Permission.AUDIT_READ,
        denied=DENIED,
        blocked=lambda c: _readable(c) or ("Verifying…" if c.verifying else None),
        icon="action-verify",
    ),
)
"""The panel's actions, declared once: their enablement and reasons follow from the data."""


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


class AuditPanel(QWidget):
    """The audit log for admins and operators."""

    def __init__(self, client: Client, me: MeView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AuditPanel")
        self.client = client
        self.me = me
        self.model = AuditTableModel(client, parent=self)
        self._known_actors: set[str] = set()
        self._known_actions: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.last_verification: AuditVerification | None = None
        self.export_page_size = EXPORT_PAGE_SIZE

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.apply_filters)
        self._probe_timer = QTimer(self)
        self._probe_timer.setSingleShot(True)
        self._probe_timer.setInterval(PROBE_MS)
        self._probe_timer.timeout.connect(self._probe)

        self.audit_actions = ActionSet(AUDIT_ACTIONS, self)
        self._context = AuditContext()
        self._build()
        self._update_actions()
        self.model.loading_changed.connect(self._loading_changed)
        self.model.page_loaded.connect(self._page_loaded)
        self.model.rowsInserted.connect(self._rows_inserted)
        self.model.load_failed.connect(self._load_failed)
        self.model.modelReset.connect(self._update_status)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        self.model.set_query(self.current_query())
        self._spawn(self._watch(), "follow the audit log")
        if Permission.USERS_READ.value in me.permissions:
            self._spawn(self._load_actors(), "list the users")

    def _spawn(self, coro: Coroutine[Any, Any, T], what: str) -> asyncio.Task[T]:
        """`run_async` over this panel, remembered so `shutdown` can wait for it to end."""
        task = run_async(coro, parent=self, what=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- building -----------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)

        title = QLabel("Audit log", self)
        title.setObjectName("PanelTitle")
        layout.addWidget(title)
        layout.addLayout(self._build_filters())
        self.filter_error = message_line(self)
        layout.addWidget(self.filter_error)
        layout.addLayout(self._build_actions())
        self._build_bars(layout)
        self._build_table()
        self.forbidden = PlaceholderPanel(
            "No access to the audit log", FORBIDDEN_MESSAGE, "nav-audit", self
        )
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.splitter)
        self.pages.addWidget(self.forbidden)
        layout.addWidget(self.pages, 1)
        self._connect()

    def _build_filters(self) -> QHBoxLayout:
        filters = QHBoxLayout()
        filters.setSpacing(6)
        self.actor = self._combo("actor", "Any actor")
        self.action = self._combo("action", "Any action")
        self.preset = QComboBox(self)
        self.preset.setObjectName("preset")
        for label, _ in PRESETS:
            self.preset.addItem(label)
        self.preset.setToolTip("Which time range to show")
        now = QDateTime.currentDateTime()
        self.since = self._date_edit("since", now.addDays(-1), "From (inclusive)")
        self.until = self._date_edit("until", now, "To (inclusive, to the second)")
        self.text = QLineEdit(self)
        self.text.setObjectName("text")
        self.text.setPlaceholderText("Search target, details, action, actor")
        self.text.setClearButtonEnabled(True)
        self.text.setMinimumWidth(180)
        for label, widget in (("Actor", self.actor), ("Action", self.action)):
            filters.addWidget(QLabel(label, self))
            filters.addWidget(widget)
        filters.addWidget(QLabel("Time", self))
        filters.addWidget(self.preset)
        filters.addWidget(self.since)
        self.to_label = QLabel("to", self)
        filters.addWidget(self.to_label)
        filters.addWidget(self.until)
        filters.addWidget(self.text, 1)
        self._custom_range(False)
        return filters

    def _build_actions(self) -> QHBoxLayout:
        actions = QHBoxLayout()
        actions.setSpacing(6)
        self.toolbar = QToolBar(self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.audit_actions.fill_toolbar(self.toolbar)
        self.addActions(self.audit_actions.all())  # shortcuts work anywhere in the panel
        self.status = QLabel(self)
        self.status.setObjectName("Muted")
        actions.addWidget(self.toolbar)
        actions.addSpacing(12)
        actions.addWidget(self.status, 1)
        return actions

    def _build_bars(self, layout: QVBoxLayout) -> None:
        """Verification result, new entries, the busy bar: shown only when they have news."""
        self.verify_result = QLabel(self)
        self.verify_result.setObjectName("VerifyResult")
        self.verify_result.setWordWrap(True)
        self.verify_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verify_result.hide()
        layout.addWidget(self.verify_result)

        self.new_bar = QFrame(self)
        self.new_bar.setObjectName("NewEntriesBar")
        bar = QHBoxLayout(self.new_bar)
        bar.setContentsMargins(10, 4, 6, 4)
        self.new_label = QLabel(self.new_bar)
        self.show_new_button = QPushButton("Show", self.new_bar)
        self.show_new_button.setToolTip("Reload from the newest entry, keeping the filters")
        bar.addWidget(self.new_label, 1)
        bar.addWidget(self.show_new_button)
        self.new_bar.hide()
        layout.addWidget(self.new_bar)

        self.busy = busy_bar(self)
        layout.addWidget(self.busy)

    def _build_table(self) -> None:
        self.table = QTableView(self)
        self.table.setObjectName("AuditTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.verticalHeader().hide()
        # Fixed row heights: the view never measures rows it does not show.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 10)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for number, column in enumerate(COLUMNS):
            header.resizeSection(number, column.width)

        self.detail = QPlainTextEdit(self)
        self.detail.setObjectName("AuditDetail")
        self.detail.setReadOnly(True)
        self.detail.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.detail.setPlaceholderText("Select an entry to see all of it here.")

        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([440, 200])

    def _connect(self) -> None:
        self.actor.editTextChanged.connect(self._filters_changed)
        self.action.editTextChanged.connect(self._filters_changed)
        self.text.textChanged.connect(self._filters_changed)
        self.text.returnPressed.connect(self.apply_filters)
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self.since.dateTimeChanged.connect(self._filters_changed)
        self.until.dateTimeChanged.connect(self._filters_changed)
        self.show_new_button.clicked.connect(self.refresh)
        self.audit_actions["refresh"].triggered.connect(self.refresh)
        self.audit_actions["export"].triggered.connect(self.export)
        self.audit_actions["verify"].triggered.connect(self.verify)

    def _combo(self, name: str, placeholder: str) -> QComboBox:
        """An editable combo: type an exact name, or pick one seen in the log."""
        combo = QComboBox(self)
        combo.setObjectName(name)
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.setMinimumWidth(130)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.addItem("")
        line = combo.lineEdit()
        assert line is not None  # editable
        line.setPlaceholderText(placeholder)
        line.setClearButtonEnabled(True)
        combo.setToolTip(f"Only entries of this {name} (exact name)")
        return combo

    def _date_edit(self, name: str, value: QDateTime, tip: str) -> QDateTimeEdit:
        edit = QDateTimeEdit(value, self)
        edit.setObjectName(name)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat(DATE_FORMAT)
        edit.setToolTip(f"{tip}, local time")
        return edit

    # -- filters ------------------------------------------------------------------------

    def current_query(self) -> AuditQuery:
        """The filters as the user set them; presets are measured from now."""
        since: float | None = None
        until: float | None = None
        index = self.preset.currentIndex()
        if index == CUSTOM:
            since = self.since.dateTime().toSecsSinceEpoch()
            # "To 12:00:05" includes the whole of that second: the service's end is exclusive.
            until = self.until.dateTime().toSecsSinceEpoch() + 1.0
        elif (back := PRESETS[index][1]) is not None:
            since = datetime.now().timestamp() - back
        return AuditQuery(
            actor=self.actor.currentText().strip() or None,
            action=self.action.currentText().strip() or None,
            since=since,
            until=until,
            text=self.text.text().strip() or None,
        )

    def _filters_changed(self, *_: Any) -> None:
        self._debounce.start()

    def _preset_changed(self, index: int) -> None:
        self._custom_range(index == CUSTOM)
        self._filters_changed()

    def _custom_range(self, custom: bool) -> None:
        for widget in (self.since, self.to_label, self.until):
            widget.setVisible(custom)

    def apply_filters(self) -> None:
        """Show the entries matching the filters now (the debounce calls this)."""
        self._debounce.stop()
        query = self.current_query()
        if query != self.model.query or self.model.error is not None:
            self._reload(query)

    def refresh(self) -> None:
        """Reload from the newest entry with the current filters."""
        self._debounce.stop()
        self._reload(self.current_query())

    def _reload(self, query: AuditQuery) -> None:
        self.filter_error.hide()
        self.new_bar.hide()
        self.detail.clear()
        self.model.set_query(query)

    # -- loading ------------------------------------------------------------------------

    def _loading_changed(self, loading: bool) -> None:
        self.busy.setVisible(loading)
        self._update_status()

    def _page_loaded(self) -> None:
        self.pages.setCurrentWidget(self.splitter)
        self._update_actions(forbidden=False)
        self._update_status()

    def _rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        for row in range(first, last + 1):
            self._remember(self.model.entry(row))

    def _remember(self, entry: AuditEntryView) -> None:
        """Offer actors and actions seen in the log in the filter combos."""
        for known, combo, value in (
            (self._known_actors, self.actor, entry.actor),
            (self._known_actions, self.action, entry.action),
        ):
            if value and value not in known:
                known.add(value)
                position = sorted(known).index(value) + 1  # after the empty "any" item
                combo.insertItem(position, value)

    def _load_failed(self, error: QuarterdeckError) -> None:
        if isinstance(error, Forbidden):
            self.pages.setCurrentWidget(self.forbidden)
            self._update_actions(forbidden=True)
        else:
            self.filter_error.setText(
                f"Could not load the audit log: {reporting.describe(error)} "
                "Change the filters or press Refresh to try again."
            )
            self.filter_error.show()
        self._update_status()

    def _update_actions(self, **changes: bool) -> None:
        """Enable the actions the role and the panel's state allow; the reason on the rest."""
        self._context = replace(self._context, **changes)
        self.audit_actions.update(self.me, self._context)

    def _update_status(self) -> None:
        model = self.model
        rows = model.rowCount()
        if model.error is not None:
            text = "Not loaded."
        elif model.loading and rows == 0:
            text = "Loading…"
        elif not model.exhausted:
            text = (
                f"Showing the newest {_count(rows, 'matching entry', 'matching entries')}; "
                "scroll down for older ones."
            )
        elif rows == 0:
            text = "No entries match these filters." if self._filtered() else "The log is empty."
        else:
            text = f"All {_count(rows, 'matching entry', 'matching entries')} shown."
        self.status.setText(text)

    def _filtered(self) -> bool:
        query = self.model.query
        return any(
            value is not None
            for value in (query.actor, query.action, query.since, query.until, query.text)
        )

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.detail.clear()
            return
        self.detail.setPlainText(self._describe(self.model.entry(rows[0].row())))

    @staticmethod
    def _describe(entry: AuditEntryView) -> str:
        actor = entry.actor if entry.actor_id is None else f"{entry.actor} (user #{entry.actor_id})"
        lines = [
            f"Entry #{entry.id}",
            f"Time:           {local_time(entry.ts)} local · {utc_time(entry.ts)}",
            f"Actor:          {actor}",
            f"Action:         {entry.action}",
            f"Target:         {entry.target}",
            f"Source:         {entry.source}",
            f"Correlation id: {entry.correlation_id or '—'}",
            "Details:",
            pretty_json(entry.details),
        ]
        return "\n".join(lines)

    async def _load_actors(self) -> None:
        """Seed the actor filter with every user's name (they may have no entry loaded yet)."""
        try:
            users = await self.client.list_users()
        except QuarterdeckError as error:
            log.info("no user names for the actor filter: %s", reporting.describe(error))
            return
        for user in users:
            if user.username not in self._known_actors:
                self._known_actors.add(user.username)
                position = sorted(self._known_actors).index(user.username) + 1
                self.actor.insertItem(position, user.username)

    # -- new entries ----------------------------------------------------------------------

    async def _watch(self) -> None:
        """Follow `audit` events; each may mean new matching entries: probe (throttled)."""
        stream = self.client.events(["audit"])
        try:
            async for item in stream:
                newer = isinstance(item, StreamReset) or (
                    int(item.data.get("id", 0)) > self.model.newest_id()
                )
                if newer and not self._probe_timer.isActive():
                    self._probe_timer.start()
        except QuarterdeckError as error:
            # No live updates (e.g. Forbidden): Refresh still works.
            log.info("not following the audit log: %s", reporting.describe(error))
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    def _probe(self) -> None:
        self._spawn(self._count_new(), "count the new audit entries")

    async def _count_new(self) -> None:
        if self.model.loading or self.model.error is not None:
            self._probe_timer.start()  # ask again once the table has its first page
            return
        query, newest = self.model.query, self.model.newest_id()
        try:
            page = await self.client.list_audit(query, limit=PROBE_LIMIT)
        except QuarterdeckError as error:
            log.info("could not count new audit entries: %s", reporting.describe(error))
            return
        if query != self.model.query or newest != self.model.newest_id():
            return  # the table was reloaded meanwhile
        fresh = sum(entry.id > newest for entry in page.entries)
        if fresh == 0:
            return
        more = "+" if fresh == len(page.entries) and page.next_cursor is not None else ""
        noun = "new entry" if fresh == 1 and not more else "new entries"
        self.new_label.setText(f"{fresh:,}{more} {noun} matching the filters.")
        self.new_bar.show()

    # -- verify -------------------------------------------------------------------------

    def verify(self) -> asyncio.Task[None]:
        """Start verifying the chain (the button's slot)."""
        return self._spawn(self._verify(), "verify the audit log")

    async def _verify(self) -> None:
        """Walk the whole hash chain on the backend and say plainly what it found."""
        self._update_actions(verifying=True)
        self._show_verification("Verifying the chain…", state="busy")
        try:
            result = await self.client.verify_audit()
        except Forbidden:
            self._show_verification(FORBIDDEN_MESSAGE, state="broken")
            self._update_actions(forbidden=True)
            return
        except QuarterdeckError as error:
            self._show_verification(
                f"Could not verify the chain: {reporting.describe(error)}", state="broken"
            )
            return
        finally:
            self._update_actions(verifying=False)
        self.last_verification = result
        checked_at = QDateTime.currentDateTime().toString("HH:mm:ss")
        if result.ok:
            self._show_verification(
                f"✔ The chain is intact: all {_count(result.checked, 'entry', 'entries')} "
                f"verified (checked at {checked_at}).",
                state="ok",
            )
        else:
            problem = reporting.sentence(result.problem or "it does not match")
            self._show_verification(
                f"✘ The chain is broken at entry #{result.first_broken_id}: {problem} "
                f"The {_count(result.checked, 'entry', 'entries')} before it verified "
                f"(checked at {checked_at}).",
                state="broken",
            )

    def _show_verification(self, text: str, *, state: str) -> None:
        self.verify_result.setText(text)
        self.verify_result.setProperty("state", state)
        # Re-polish so the stylesheet's [state=...] rule follows the new value.
        self.verify_result.style().unpolish(self.verify_result)
        self.verify_result.style().polish(self.verify_result)
        self.verify_result.show()

    # -- export -------------------------------------------------------------------------

    def export(self) -> asyncio.Task[None]:
        """Start an export (the button's slot)."""
        return self._spawn(self._export(), "export the audit log")

    async def _export(self) -> None:
        """Ask where, then write every entry matching the filters there."""
        dialog = QFileDialog(self, "Export the audit log", str(self._default_path()))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilter("CSV files (*.csv)")
        dialog.setDefaultSuffix("csv")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        try:
            if not await wait_closed(dialog):
                return
            chosen = dialog.selectedFiles()
        finally:
            dialog.deleteLater()
        if chosen:
            await self.export_to(Path(chosen[0]))

    @staticmethod
    def _default_path() -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path.home() / f"quarterdeck-audit-{stamp}.csv"

    async def export_to(self, path: Path) -> int | None:
        """Export with a progress dialog that can cancel; the row count, None if cancelled."""
        query = self.model.query
        progress = QProgressDialog("Exporting the audit log…", "Cancel", 0, 1000, self)
        progress.setObjectName("ExportProgress")
        progress.setWindowTitle("Export the audit log")
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(0)
        progress.setAutoClose(False)
        progress.setAutoReset(False)
        progress.setValue(0)

        def on_progress(rows: int, fraction: float) -> None:
            progress.setLabelText(f"Exporting the audit log… {_count(rows, 'entry', 'entries')}")
            progress.setValue(round(fraction * 1000))

        task = asyncio.ensure_future(
            export_csv(
                self.client,
                query,
                path,
                on_progress=on_progress,
                page_size=self.export_page_size,
            )
        )
        progress.canceled.connect(task.cancel)
        self._update_actions(exporting=True)
        progress.show()
        try:
            written = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the panel is closing, not the user's Cancel
            self.status.setText("Export cancelled; no file written.")
            return None
        except OSError as error:
            self.status.setText(f"Could not write {path.name}: {error.strerror or error}.")
            return None
        finally:
            progress.canceled.disconnect(task.cancel)
            progress.close()
            progress.deleteLater()
            self._update_actions(exporting=False)
        self.status.setText(f"Exported {_count(written, 'entry', 'entries')} to {path}.")
        return written

    # -- closing ------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop the event stream, page loads, probes and exports before the client closes.

        Waited for, not only cancelled: a cancelled task still has a step to
        run, and it must run on the loop now, not later in some other event
        processing where no loop is running. Cancelling a query mid-flight is
        safe on the embedded backend too: its cancellation ends once the
        backend has closed that query's connection (`console.client.bridge`).
        """
        self._debounce.stop()
        self._probe_timer.stop()
        await self.model.aclose()
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
