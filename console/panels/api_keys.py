"""The signed-in user's own API keys: list, create (the secret shown once), revoke.

A key can hold only scopes its owner's role has (the backend refuses more,
and caps a key by its owner's current role at every use), so the create
form offers exactly the signed-in user's permissions. The full key exists
only in the answer to `create_api_key`: `SecretDialog` shows it with a Copy
button and says it will not be shown again; the table only ever shows the
prefix. Viewers have no API keys; the section says so instead of loading.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from console import theme
from console.asyncslots import async_slot
from console.client import Client
from console.client.errors import InvalidInput
from console.client.types import ApiKeyView, CreatedApiKey, MeView, Permission
from console.models.api_keys import CREATED, ApiKeysModel, ApiKeysSorter
from console.models.feed import ListFeed
from console.models.records import RECORD_ROLE
from console.panels.user_dialogs import CheckedForm
from console.widgets.actions import ActionSet, ActionSpec
from console.widgets.confirm import confirm
from console.widgets.forms import wait_closed
from console.widgets.tables import busy_bar, fit_columns, message_line, record_table

DESCENDING = Qt.SortOrder.DescendingOrder
NO_KEYS = "Your role cannot have API keys; operators and admins can."


@dataclass(frozen=True, slots=True)
class KeyContext:
    key: ApiKeyView | None


def _revoke_blocked(context: KeyContext) -> str | None:
    if context.key is None:
        return "Select a key to revoke."
    if context.key.revoked_at is not None:
        return "This key is already revoked."
    return None


KEY_ACTIONS: tuple[ActionSpec[KeyContext], ...] = (
    ActionSpec(
        key="create_key",
        text="Create key…",
        tip="Create an API key for an agent or a script.",
        requires=Permission.API_KEYS_OWN,
        denied=NO_KEYS,
        icon="action-add",
    ),
    ActionSpec(
        key="revoke_key",
        text="Revoke…",
        tip="Revoke the selected key: whatever uses it is refused from then on.",
        requires=Permission.API_KEYS_OWN,
        denied=NO_KEYS,
        blocked=_revoke_blocked,
        icon="action-disable",
    ),
)


def offered_scopes(me: MeView) -> list[str]:
    """The scopes a key of `me` may hold: exactly `me`'s permissions, in declaration order."""
    return [permission.value for permission in Permission if permission.value in me.permissions]


class CreateApiKeyDialog(CheckedForm):
    def __init__(self, client: Client, me: MeView, parent: QWidget | None = None) -> None:
        super().__init__(
            "Create API key",
            "The key acts as you, limited to the scopes chosen here and to your role.",
            parent,
        )
        self._client = client
        self.created: CreatedApiKey | None = None
        self.name = self.line_edit("name", "Name")
        self.name.setPlaceholderText("e.g. agent on web-01")
        self.check_field("name", self.name, self._name_problem)
        box = QWidget(self)
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        self.scopes: dict[str, QCheckBox] = {}
        for scope in offered_scopes(me):
            check = QCheckBox(scope, box)
            check.setObjectName(f"scope:{scope}")
            check.toggled.connect(self._scope_toggled)
            column.addWidget(check)
            self.scopes[scope] = check
        self.add_field("scopes", "Scopes", box)
        self.add_check("scopes", self._scopes_problem)
        self.set_ok_text("Create key")
        self.revalidate()
        self.name.setFocus()

    def chosen(self) -> list[str]:
        return [scope for scope, check in self.scopes.items() if check.isChecked()]

    def _name_problem(self) -> str | None:
        if not self.name.text().strip():
            return "Name the key after what will use it."
        return None

    def _scopes_problem(self) -> str | None:
        return None if self.chosen() else "Choose at least one scope."

    def _scope_toggled(self, _checked: bool) -> None:
        self.revalidate()

    async def submit(self) -> None:
        problem = self.problem()
        if problem:
            raise InvalidInput(problem)
        self.created = await self._client.create_api_key(
            name=self.name.text().strip(), scopes=self.chosen()
        )


class SecretDialog(QDialog):
    """The new key, once. Closing it forgets the secret; nothing can show it again."""

    def __init__(self, created: CreatedApiKey, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SecretDialog")
        self.setWindowTitle("API key created")
        self.setModal(True)
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"The key <b>{created.key.name}</b> has the scopes: {', '.join(created.key.scopes)}.",
            self,
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(intro)
        self.warning = QLabel(
            "Copy it now: it will not be shown again. Quarterdeck keeps only a hash of it; "
            "if it is lost, revoke it and create another.",
            self,
        )
        self.warning.setObjectName("ErrorLabel")
        self.warning.setWordWrap(True)
        layout.addWidget(self.warning)
        row = QHBoxLayout()
        self.secret = QLineEdit(created.secret, self)
        self.secret.setObjectName("secret")
        self.secret.setReadOnly(True)
        fixed = QFont("monospace")
        fixed.setStyleHint(QFont.StyleHint.Monospace)
        self.secret.setFont(fixed)
        self.secret.setCursorPosition(0)
        row.addWidget(self.secret, 1)
        self.copy_button = QPushButton(theme.icon("action-copy"), "Copy", self)
        self.copy_button.setObjectName("copy")
        self.copy_button.clicked.connect(self.copy)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        buttons = QDialogButtonBox(self)
        self.done_button = buttons.addButton("Done", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        self.copy_button.setDefault(True)
        self.copy_button.setFocus()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.secret.text())
        self.copy_button.setText("Copied")

    def done(self, result: int) -> None:
        self.secret.clear()  # the widget does not keep the secret once closed
        super().done(result)


class ApiKeysSection(QWidget):
    """The "My API keys" tab of the users panel."""

    def __init__(self, client: Client, me: MeView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ApiKeysSection")
        self._client = client
        self.me = me
        self.model = ApiKeysModel(self)
        self.proxy = ApiKeysSorter(self)
        self.proxy.setSourceModel(self.model)
        self.key_actions = ActionSet(KEY_ACTIONS, self)
        self.key_actions["create_key"].triggered.connect(self.create_key)
        self.key_actions["revoke_key"].triggered.connect(self.revoke_key)
        self.feed = ListFeed(self._client.list_api_keys, self, what="your API keys")
        self._sized = False

        self.toolbar = QToolBar(self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.key_actions.fill_toolbar(self.toolbar)
        self.progress = busy_bar(self)
        self.message = message_line(self)
        self.table = record_table(
            self, self.proxy, "ApiKeysTable", sort_column=CREATED, order=DESCENDING
        )
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.note = QLabel(
            "Keys act as you, within their scopes and your role. "
            "Agents send them as “Authorization: Bearer <key>”.",
            self,
        )
        self.note.setObjectName("Muted")
        self.note.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)

        self.feed.loading.connect(self.progress.setVisible)
        self.feed.loaded.connect(self._loaded)
        self.feed.failed.connect(self._show_message)
        self._update_actions()

    @property
    def allowed(self) -> bool:
        return Permission.API_KEYS_OWN.value in self.me.permissions

    def start(self) -> None:
        if self.allowed:
            self.feed.start()
        else:
            self._show_message(NO_KEYS)
            self.table.setEnabled(False)

    async def shutdown(self) -> None:
        await self.feed.stop()

    def set_me(self, me: MeView) -> None:
        was = self.allowed
        self.me = me
        if self.allowed and not was:
            self.message.hide()
            self.table.setEnabled(True)
            self.feed.start()
        self._update_actions()

    def selected(self) -> ApiKeyView | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        key = rows[0].data(RECORD_ROLE)
        return key if isinstance(key, ApiKeyView) else None

    def select(self, key_id: int) -> None:
        row = self.model.row_of(key_id)
        if row is None:
            return
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectRow(index.row())
        self.table.scrollTo(index)

    # -- actions ------------------------------------------------------------------------

    @async_slot("create the API key")
    async def create_key(self) -> None:
        dialog = CreateApiKeyDialog(self._client, self.me, self)
        try:
            if not await wait_closed(dialog) or dialog.created is None:
                return
            created = dialog.created
        finally:
            dialog.deleteLater()
        self.model.upsert(created.key)
        self.select(created.key.id)
        self.feed.reload()
        secret = SecretDialog(created, self)
        try:
            await wait_closed(secret)
        finally:
            secret.deleteLater()

    @async_slot("revoke the API key")
    async def revoke_key(self) -> None:
        key = self.selected()
        if key is None or key.revoked_at is not None:
            return
        if not await confirm(
            self,
            "Revoke API key",
            f"Revoke the key “{key.name}” ({key.prefix}…)?",
            "Revoke key",
            "Whatever uses it is refused from now on. This cannot be undone.",
        ):
            return
        self.model.upsert(await self._client.revoke_api_key(key.id))
        self.feed.reload()
        self._update_actions()

    # -- inside -------------------------------------------------------------------------

    def _loaded(self, keys: list[ApiKeyView]) -> None:
        self.message.hide()
        self.model.set_records(keys)
        if keys and not self._sized:
            self._sized = True
            fit_columns(self.table)
        self._update_actions()

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()

    def _selection_changed(self, *_: object) -> None:
        self._update_actions()

    def _update_actions(self) -> None:
        self.key_actions.update(self.me, KeyContext(self.selected()))

    def _context_menu(self, position: QPoint) -> None:
        index: QModelIndex = self.table.indexAt(position)
        if index.isValid():
            self.table.selectRow(index.row())
        menu = self.key_actions.menu(self)
        menu.popup(self.table.viewport().mapToGlobal(position))
