"""The Configuration panel: every run-time setting, edited safely.

Left, the categories with their settings (`SettingsTreeModel`); right, the
selected category's form, one `SettingRow` per setting with an editor
built from its declaration, and below it the selected setting's history.

Edits stay drafts in `SettingsState` until "Save…", which lists them and
asks for a reason, then writes each with the version its editor was
loaded from. If someone wrote it meanwhile, the service refuses (a
conflict) and `ConflictDialog` shows both values: reload theirs, or review
and overwrite. Settings changed elsewhere arrive as `settings` events: an
untouched editor follows at once, an edited one is marked "changed
elsewhere" and keeps what was typed.

Who may do what is data (`GATES`): viewers read; writing needs
settings:write, secrets and exports with secrets need settings:secrets.
A control the role may not use is disabled with the reason as tooltip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QItemSelection, QModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from console import reporting
from console.asyncslots import async_slot, run_async
from console.client import Client
from console.client.errors import Conflict, InvalidInput, QuarterdeckError
from console.client.types import Event, MeView, Permission, SettingView, StreamReset, Topic
from console.models.setting_history import VERSION_ROLE, SettingHistoryModel
from console.models.settings import SettingsState, SettingsTreeModel
from console.models.settingspec import FieldSpec
from console.panels.configuration_dialogs import (
    ConflictDialog,
    ExportDialog,
    ImportDialog,
    Resolution,
    RollbackDialog,
    SaveDialog,
)
from console.widgets.files import choose_file
from console.widgets.forms import wait_closed
from console.widgets.setting_row import SettingRow

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Gate:
    """A permission a control needs, and what its tooltip says when it is missing."""

    permission: Permission
    denied: str


WRITE = Gate(Permission.SETTINGS_WRITE, "Your role cannot change settings (needs settings:write).")
SECRETS = Gate(
    Permission.SETTINGS_SECRETS, "Your role cannot read or change secrets (needs settings:secrets)."
)
GATES: dict[str, tuple[Gate, ...]] = {
    "edit": (WRITE,),
    "edit_secret": (WRITE, SECRETS),
    "save": (WRITE,),
    "rollback": (WRITE,),
    "rollback_secret": (WRITE, SECRETS),
    "import": (WRITE,),
    "export_secrets": (SECRETS,),
}
"""Every guarded control: the gates it needs, checked in order."""


def denied(me: MeView, action: str) -> str | None:
    """Why `me` may not do `action` (the first missing gate's reason); None when allowed."""
    for gate in GATES[action]:
        if gate.permission.value not in me.permissions:
            return gate.denied
    return None


class ConfigurationPanel(QWidget):
    def __init__(self, client: Client, me: MeView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ConfigurationPanel")
        self.client = client
        self.me = me
        self.state = SettingsState(self)
        self.rows: dict[str, SettingRow] = {}
        self.pages: dict[str, QScrollArea] = {}
        self.current_key: str | None = None
        self._history_generation = 0
        self._saved_count = 0
        self._live: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._build()
        self.state.reset.connect(self._rebuild_form)
        self.state.field_changed.connect(self._field_changed)
        self._update_actions()
        self.load_task = self._spawn(
            self._first_load(), "load the settings", on_error=self._load_failed
        )

    # -- building -----------------------------------------------------------------------

    def _build(self) -> None:
        header = self._build_header()
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(4)
        self.progress.hide()
        self.load_error = QLabel(self)
        self.load_error.setObjectName("ErrorLabel")
        self.load_error.setWordWrap(True)
        self.load_error.hide()
        self._build_tree()
        self.form_stack = QStackedWidget(self)
        self.empty_page = QLabel("Loading the settings…", self)
        self.empty_page.setObjectName("Muted")
        self.empty_page.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.form_stack.addWidget(self.empty_page)
        right = QSplitter(Qt.Orientation.Vertical, self)
        right.addWidget(self.form_stack)
        right.addWidget(self._build_history())
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setChildrenCollapsible(False)
        right.setSizes([500, 260])
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([310, 730])
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addLayout(header)
        layout.addWidget(self.progress)
        layout.addWidget(self.load_error)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(self._build_footer())

    def _build_header(self) -> QHBoxLayout:
        title = QLabel("Configuration", self)
        title.setObjectName("PanelTitle")
        self.role_note = QLabel(self)
        self.role_note.setObjectName("Muted")
        read_only = denied(self.me, "edit")
        if read_only:
            self.role_note.setText(f"Read only. {read_only}")
        elif denied(self.me, "edit_secret"):
            self.role_note.setText("Secrets are masked: your role cannot read or change them.")
        self.reload_button = QPushButton("Reload", self)
        self.reload_button.setToolTip("Read every setting again (your unsaved edits are kept).")
        self.reload_button.clicked.connect(self.reload)
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Save the settings to a JSON file.")
        self.export_button.clicked.connect(self.export_settings)
        self.import_button = QPushButton("Import…", self)
        self.import_button.clicked.connect(self.import_settings)
        header = QHBoxLayout()
        header.addWidget(title)
        header.addSpacing(12)
        header.addWidget(self.role_note, 1)
        header.addWidget(self.reload_button)
        header.addWidget(self.export_button)
        header.addWidget(self.import_button)
        return header

    def _build_tree(self) -> None:
        self.tree_model = SettingsTreeModel(self.state, self)
        self.tree = QTreeView(self)
        self.tree.setObjectName("SettingsTree")
        self.tree.setModel(self.tree_model)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(True)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.selectionModel().selectionChanged.connect(self._tree_selected)

    def _build_history(self) -> QWidget:
        self.history_title = QLabel("History", self)
        self.history_title.setObjectName("SettingTitle")
        self.history_model = SettingHistoryModel(self)
        self.history = QTableView(self)
        self.history.setObjectName("SettingHistory")
        self.history.setModel(self.history_model)
        self.history.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.verticalHeader().hide()
        self.history.setAlternatingRowColors(True)
        header_view = self.history.horizontalHeader()
        header_view.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header_view.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.history.selectionModel().selectionChanged.connect(self._history_selected)
        self.difference = QLabel("Select a version to compare it with the current value.", self)
        self.difference.setObjectName("Muted")
        self.difference.setWordWrap(True)
        self.rollback_button = QPushButton("Roll back to this version…", self)
        self.rollback_button.clicked.connect(self.rollback)
        history_box = QWidget(self)
        history_layout = QVBoxLayout(history_box)
        history_layout.setContentsMargins(0, 6, 0, 0)
        history_layout.addWidget(self.history_title)
        history_layout.addWidget(self.history, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.difference, 1)
        bottom.addWidget(self.rollback_button)
        history_layout.addLayout(bottom)
        return history_box

    def _build_footer(self) -> QHBoxLayout:
        self.status = QLabel(self)
        self.status.setObjectName("Muted")
        self.blocked = QLabel(self)
        self.blocked.setObjectName("ErrorLabel")
        self.blocked.hide()
        self.live_label = QLabel(self)
        self.live_label.setObjectName("Muted")
        self.discard_button = QPushButton("Discard changes", self)
        self.discard_button.clicked.connect(self.discard_all)
        self.save_button = QPushButton("Save…", self)
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        footer = QHBoxLayout()
        footer.addWidget(self.status, 1)
        footer.addWidget(self.blocked)
        footer.addWidget(self.live_label)
        footer.addWidget(self.discard_button)
        footer.addWidget(self.save_button)
        return footer

    def _rebuild_form(self) -> None:
        """One scrollable page per category, one row per setting; built when the list arrives."""
        for page in self.pages.values():
            self.form_stack.removeWidget(page)
            page.deleteLater()
        self.pages.clear()
        self.rows.clear()
        for category in self.state.categories():
            content = QWidget()
            content.setObjectName("SettingsPage")
            column = QVBoxLayout(content)
            column.setSpacing(6)
            for field in self.state.in_category(category):
                gate = "edit_secret" if field.spec.secret else "edit"
                row = SettingRow(
                    self.state, field.key, denied=denied(self.me, gate), parent=content
                )
                row.activated.connect(self.select)
                column.addWidget(row)
                self.rows[field.key] = row
            column.addStretch(1)
            page = QScrollArea(self.form_stack)
            page.setWidgetResizable(True)
            page.setFrameShape(QScrollArea.Shape.NoFrame)
            page.setWidget(content)
            self.form_stack.addWidget(page)
            self.pages[category] = page
        self.tree.expandAll()
        if self.current_key in self.rows:
            self.select(self.current_key)
        elif self.rows:
            self.select(next(iter(self.rows)))

    # -- loading ------------------------------------------------------------------------

    def _spawn(
        self,
        coro: Coroutine[Any, Any, T],
        what: str,
        on_error: Callable[[BaseException], bool] | None = None,
    ) -> asyncio.Task[T]:
        """`run_async`, and remember the task so `shutdown` can stop it."""
        task = run_async(coro, parent=self, what=what, on_error=on_error)
        self._adopt(task)
        return task

    def _adopt(self, task: asyncio.Task[Any] | None = None) -> None:
        """Count `task` (by default the running one: an async slot) among the panel's own."""
        task = task or asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _start_live(self) -> None:
        if not self._closing and (self._live is None or self._live.done()):
            self._live = self._spawn(
                self._follow(), "follow setting changes", on_error=self._live_failed
            )

    async def _first_load(self) -> None:
        await self._load()
        self._start_live()

    async def _load(self) -> None:
        self.progress.show()
        try:
            views = await self.client.list_settings()
        finally:
            self.progress.hide()
        self.load_error.hide()
        self.state.load(views)
        self._update_actions()

    def _load_failed(self, error: BaseException) -> bool:
        if not isinstance(error, QuarterdeckError):
            return False
        self.load_error.setText(f"Could not load the settings. {reporting.describe(error)}")
        self.load_error.show()
        self.empty_page.setText("The settings could not be loaded. Press Reload to try again.")
        return True

    @async_slot("reload the settings")
    async def reload(self) -> None:
        self._adopt()
        try:
            await self._load()
        except QuarterdeckError as error:
            self._load_failed(error)
            return
        self._start_live()
        if self.current_key:
            self._load_history(self.current_key)
        self.status.setText("Reloaded.")

    async def _follow(self) -> None:
        """Apply `settings` events as they come; a reset (events lost) reloads everything."""
        stream = self.client.events([Topic.SETTINGS.value])
        self.live_label.setText("Live")
        self.live_label.setToolTip("Changes made elsewhere appear here as they happen.")
        try:
            async for message in stream:
                if isinstance(message, StreamReset):
                    await self._load()
                    if self.current_key:
                        self._load_history(self.current_key)
                elif isinstance(message, Event):
                    await self._changed_elsewhere(message)
        finally:
            self.live_label.setText("")
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    async def _changed_elsewhere(self, event: Event) -> None:
        key = event.data.get("key")
        version = event.data.get("version")
        if not isinstance(key, str) or key not in self.state:
            return
        field = self.state.field(key)
        known = field.elsewhere.version if field.elsewhere is not None else field.view.version
        if isinstance(version, int) and version <= known:
            return  # our own write, or a late event
        self.state.update(await self.client.get_setting(key))
        if key == self.current_key:
            self._load_history(key)

    def _live_failed(self, error: BaseException) -> bool:
        if not isinstance(error, QuarterdeckError):
            return False
        self.live_label.setText("Not live")
        self.live_label.setToolTip(
            f"Changes made elsewhere are not followed: {reporting.describe(error)} "
            "Press Reload to try again."
        )
        return True

    async def shutdown(self) -> None:
        """Before the client closes: close open dialogs, stop every call and the event stream."""
        self._closing = True
        for dialog in self.findChildren(QDialog):
            if dialog.isVisible():
                dialog.reject()
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- selection and history ------------------------------------------------------------

    def select(self, key: str) -> None:
        """Make `key` the current setting: its page, its row marked, its history below."""
        if key not in self.rows:
            return
        field = self.state.field(key)
        changed = key != self.current_key
        if self.current_key in self.rows:
            self.rows[self.current_key].set_current(False)
        self.current_key = key
        row = self.rows[key]
        row.set_current(True)
        page = self.pages[field.spec.category]
        self.form_stack.setCurrentWidget(page)
        index = self.tree_model.index_of(key)
        if self.tree.currentIndex() != index:
            self.tree.setCurrentIndex(index)
        if changed:
            page.ensureWidgetVisible(row)
            self.history_title.setText(f"History of {key}")
            self.history_model.set_history(None, [])
            self._load_history(key)

    def _tree_selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        index: QModelIndex = indexes[0]
        key = self.tree_model.key_of(index)
        if key is not None:
            self.select(key)
            return
        category = self.tree_model.category_of(index)
        if category is not None and category in self.pages:
            fields = self.state.in_category(category)
            if (
                self.current_key is None
                or self.state.field(self.current_key).spec.category != category
            ) and fields:
                self.select(fields[0].key)
            self.form_stack.setCurrentWidget(self.pages[category])

    def _load_history(self, key: str) -> None:
        self._history_generation += 1
        generation = self._history_generation
        if not self._closing:
            self._spawn(self._fetch_history(key, generation), f"load the history of {key}")

    async def _fetch_history(self, key: str, generation: int) -> None:
        versions = await self.client.setting_history(key)
        if generation != self._history_generation:
            return
        self.history_model.set_history(self.state.field(key).spec, versions)
        self.history.resizeColumnsToContents()
        self._history_selected()

    def _selected_version(self) -> int | None:
        rows = self.history.selectionModel().selectedRows()
        if not rows:
            return None
        version = self.history_model.data(rows[0], VERSION_ROLE)
        return int(version) if version is not None else None

    def _history_selected(self, *_: object) -> None:
        version = self._selected_version()
        key = self.current_key
        if version is None or key is None:
            self.difference.setText("Select a version to compare it with the current value.")
        else:
            entry = self.history_model.row_at(self.history_model.row_of(version))
            field = self.state.field(key)
            if entry is not None:
                name = "The default" if entry.is_default else f"Version {version}"
                if version == field.view.version:
                    self.difference.setText(f"{name} is the current version.")
                else:
                    self.difference.setText(
                        f"{name} vs current (version {field.view.version}): "
                        + field.spec.difference(
                            entry.value, field.view.value, masked=entry.masked or field.view.masked
                        )
                    )
        self._update_actions()

    # -- actions ------------------------------------------------------------------------

    def _field_changed(self, key: str) -> None:
        row = self.rows.get(key)
        if row is not None:
            row.refresh()
        if key == self.current_key:
            self._history_selected()
        else:
            self._update_actions()

    def _update_actions(self) -> None:
        dirty = self.state.dirty()
        blocked = self.state.blocked()
        no_write = denied(self.me, "save")
        if no_write:
            save_reason = no_write
        elif blocked:
            save_reason = "Fix the values marked in red first: " + ", ".join(
                field.key for field in blocked
            )
        elif not dirty:
            save_reason = "Nothing to save: no setting has been edited."
        else:
            save_reason = ""
        self.save_button.setEnabled(not save_reason)
        self.save_button.setToolTip(save_reason)
        self.blocked.setText(save_reason if blocked and not no_write else "")
        self.blocked.setVisible(bool(blocked) and not no_write)
        count = len(dirty)
        self.save_button.setText(
            f"Save {count} change{'s' if count != 1 else ''}…" if dirty else "Save…"
        )
        self.discard_button.setEnabled(bool(dirty))
        self.discard_button.setToolTip("" if dirty else "Nothing to discard.")
        no_import = denied(self.me, "import")
        self.import_button.setEnabled(no_import is None)
        self.import_button.setToolTip(
            no_import or "Preview the changes a settings file makes, then apply them."
        )
        reason = self._rollback_denied()
        self.rollback_button.setEnabled(reason is None)
        self.rollback_button.setToolTip(reason or "")

    def _rollback_denied(self) -> str | None:
        key = self.current_key
        if key is None or key not in self.state:
            return "Select a setting first."
        field = self.state.field(key)
        gate_reason = denied(self.me, "rollback_secret" if field.spec.secret else "rollback")
        if gate_reason:
            return gate_reason
        version = self._selected_version()
        if version is None:
            return "Select a version in the history first."
        if version == field.view.version:
            return "This is the current version."
        if field.dirty:
            return "Save or revert your edit of this setting first."
        return None

    def discard_all(self) -> None:
        for field in self.state.dirty():
            self.state.discard(field.key)
        self.status.setText("Changes discarded.")

    @async_slot("save the settings")
    async def save(self) -> None:
        self._adopt()
        fields = self.state.dirty()
        if not fields or self.state.blocked() or denied(self.me, "save"):
            return
        dialog = SaveDialog(fields, self._save_all, self)
        if await wait_closed(dialog):
            saved = self._saved_count
            self.status.setText(f"Saved {saved} setting{'s' if saved != 1 else ''}.")
            restart = [
                field.key for field in fields if field.spec.restart_required and not field.dirty
            ]
            if restart:
                self.status.setText(
                    self.status.text() + " Takes effect after a restart: " + ", ".join(restart)
                )
            if self.current_key:
                self._load_history(self.current_key)

    async def _save_all(self, reason: str) -> None:
        self._saved_count = 0
        for field in self.state.dirty():
            await self._save_one(field.key, reason)

    async def _save_one(self, key: str, reason: str) -> None:
        """Write one draft based on its loaded version; on a conflict, let the person choose."""
        while True:
            field = self.state.field(key)
            if not field.dirty:
                return
            try:
                view = await self.client.write_setting(
                    key, field.draft, expected_version=field.version, reason=reason
                )
            except Conflict:
                theirs = await self.client.get_setting(key)
                choice = await self._resolve(key, theirs)
                if choice is Resolution.RELOAD:
                    self.state.discard(key)
                    self.state.update(theirs)
                    return
                if choice is Resolution.LATER:
                    self.state.update(theirs)
                    return
                self.state.rebase(theirs)
                continue
            except InvalidInput as error:
                self.rows[key].set_error(reporting.describe(error))
                raise
            self.state.saved(view)
            self._saved_count += 1
            return

    async def _resolve(self, key: str, theirs: SettingView) -> Resolution:
        parent = self.window() if self.isVisible() else self
        active = parent.findChild(SaveDialog)
        dialog = ConflictDialog(self.state.field(key), theirs, active or parent)
        try:
            await wait_closed(dialog)
            return dialog.choice
        finally:
            dialog.deleteLater()

    @async_slot("roll the setting back")
    async def rollback(self) -> None:
        self._adopt()
        key, version = self.current_key, self._selected_version()
        if key is None or version is None or self._rollback_denied():
            return
        field = self.state.field(key)
        entry = self.history_model.row_at(self.history_model.row_of(version))
        if entry is None:
            return
        difference = field.spec.difference(
            field.view.value, entry.value, masked=entry.masked or field.view.masked
        ).replace("Current value differs", "The value changes")

        async def roll(reason: str) -> None:
            base = self.state.field(key).view
            try:
                view = await self.client.rollback_setting(
                    key, version=version, reason=reason, expected_version=base.version
                )
            except Conflict:
                theirs = await self.client.get_setting(key)
                self.state.update(theirs)
                self._load_history(key)
                raise Conflict(
                    f"{key} was changed by {theirs.updated_by or 'someone'} meanwhile (now "
                    f"version {theirs.version}); check the history, then roll back again"
                ) from None
            self.state.saved(view)

        dialog = RollbackDialog(field.spec, entry, difference, roll, self)
        if await wait_closed(dialog):
            self.status.setText(
                f"{key} rolled back to {'its default' if version == 0 else f'version {version}'}."
            )
            self._load_history(key)

    @async_slot("export the settings")
    async def export_settings(self) -> None:
        self._adopt()
        dialog = ExportDialog(
            self._export, secrets_denied=denied(self.me, "export_secrets"), parent=self
        )
        await wait_closed(dialog)

    async def _export(self, include_secrets: bool) -> None:
        suggested = f"quarterdeck-settings-{datetime.now().strftime('%Y%m%d-%H%M')}.json"
        path = await choose_file(self, "Export settings", save=True, suggested=suggested)
        if path is None:
            raise InvalidInput("no file was chosen; nothing was exported")
        document = await self.client.export_settings(include_secrets=include_secrets)
        try:
            await asyncio.to_thread(_write_json, path, document)
        except OSError as error:
            raise InvalidInput(f"cannot write {path}: {error.strerror or error}") from error
        count = len(document.get("settings", {}))
        self.status.setText(f"Exported {count} settings to {path.name}.")

    @async_slot("import settings")
    async def import_settings(self) -> None:
        self._adopt()
        if denied(self.me, "import"):
            return
        path = await choose_file(self, "Import settings", save=False)
        if path is None:
            return
        specs: dict[str, FieldSpec] = {field.key: field.spec for field in self.state.fields()}
        dialog = ImportDialog(self.client, path, specs, self)
        if await wait_closed(dialog):
            count = len(dialog.applied)
            self.status.setText(
                f"Imported {count} change{'s' if count != 1 else ''} from {path.name}."
            )
            await self._load()
            if self.current_key:
                self._load_history(self.current_key)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


__all__ = ["GATES", "ConfigurationPanel", "Gate", "denied"]
