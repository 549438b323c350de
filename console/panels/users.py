"""The Users panel: the accounts of this connection, and one's own API keys.

Everyone who may open it (every role has `users:read`) sees the table,
sorted and filtered as they like, kept fresh by `users` events. Only a
role with `users:write` (admins) creates, edits, disables, resets and
deletes; for the others those controls stay visible but disabled with the
reason as tooltip. Nobody disables, demotes or deletes their own account
(the backend answers Conflict; the panel says so before anyone tries),
and one's own password is changed from the account menu, with the current
one. The rules are the `USER_ACTIONS` data below, functions of the
selection; the widgets only show them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from console.asyncslots import async_slot, run_async
from console.client import Client
from console.client.types import MeView, Permission, Role, UserView
from console.models.feed import ListFeed
from console.models.users import ROLE_TITLES, USERNAME, UsersFilter, UsersModel
from console.panels.api_keys import ApiKeysSection
from console.panels.user_dialogs import EditUserDialog, NewUserDialog, ResetPasswordDialog
from console.widgets.actions import ActionSet, ActionSpec
from console.widgets.confirm import confirm
from console.widgets.forms import wait_closed
from console.widgets.tables import busy_bar, fit_columns, message_line, record_table

ADMINS_ONLY = "Only admins can change users; your role can only look."


@dataclass(frozen=True, slots=True)
class UserContext:
    """What the user actions depend on: who acts, and on whom."""

    me: MeView
    user: UserView | None

    @property
    def own(self) -> bool:
        return self.user is not None and self.user.id == self.me.id


def _on_selection(verb: str, own: str | None = None) -> Callable[[UserContext], str | None]:
    """The rule of an action on the selected user: one must be selected, maybe not oneself."""

    def blocked(context: UserContext) -> str | None:
        if context.user is None:
            return f"Select a user to {verb}."
        if own is not None and context.own:
            return own
        return None

    return blocked


def _toggle_label(context: UserContext) -> str:
    return "Enable" if context.user is not None and context.user.disabled else "Disable"


USER_ACTIONS: tuple[ActionSpec[UserContext], ...] = (
    ActionSpec(
        key="new_user",
        text="New user…",
        tip="Create an account.",
        requires=Permission.USERS_WRITE,
        denied=ADMINS_ONLY,
        icon="action-add",
        shortcut=QKeySequence.StandardKey.New,
    ),
    ActionSpec(
        key="edit_user",
        text="Edit…",
        tip="Change the selected user's role or display name.",
        requires=Permission.USERS_WRITE,
        denied=ADMINS_ONLY,
        blocked=_on_selection("edit"),
        icon="action-edit",
    ),
    ActionSpec(
        key="toggle_user",
        text="Disable",
        tip="Disable or enable the selected account; disabling signs it out everywhere.",
        requires=Permission.USERS_WRITE,
        denied=ADMINS_ONLY,
        blocked=_on_selection("disable or enable", own="You cannot disable your own account."),
        label=_toggle_label,
        icon="action-disable",
    ),
    ActionSpec(
        key="reset_password",
        text="Reset password…",
        tip="Set a new password for the selected user; they are signed out everywhere.",
        requires=Permission.USERS_WRITE,
        denied=ADMINS_ONLY,
        blocked=_on_selection(
            "reset the password of",
            own="Change your own password from your account menu (it needs the current one).",
        ),
        icon="action-password",
    ),
    ActionSpec(
        key="delete_user",
        text="Delete…",
        tip="Delete the selected account.",
        requires=Permission.USERS_WRITE,
        denied=ADMINS_ONLY,
        blocked=_on_selection("delete", own="You cannot delete your own account."),
        icon="action-delete",
        shortcut=QKeySequence.StandardKey.Delete,
    ),
)


class UsersPanel(QWidget):
    """The "users" navigation entry: a Users tab and a My API keys tab."""

    def __init__(self, client: Client, me: MeView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("UsersPanel")
        self._client = client
        self.me = me
        self._select_after: int | None = None

        self.model = UsersModel(me.id, self)
        self.proxy = UsersFilter(self)
        self.proxy.setSourceModel(self.model)
        self.user_actions = ActionSet(USER_ACTIONS, self)
        self.user_actions["new_user"].triggered.connect(self.new_user)
        self.user_actions["edit_user"].triggered.connect(self.edit_user)
        self.user_actions["toggle_user"].triggered.connect(self.toggle_user)
        self.user_actions["reset_password"].triggered.connect(self.reset_password)
        self.user_actions["delete_user"].triggered.connect(self.delete_user)
        self.feed = ListFeed(
            client.list_users, self, what="the users", events=lambda: client.events(["users"])
        )

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_users_page(), "Users")
        self.api_keys = ApiKeysSection(client, me, self)
        self.tabs.addTab(self.api_keys, "My API keys")
        if not self.api_keys.allowed:
            self.tabs.setTabToolTip(1, "Your role cannot have API keys; operators and admins can.")

        title = QLabel("Users", self)
        title.setObjectName("PanelTitle")
        subtitle = QLabel("The accounts that sign in to this connection, and your API keys.", self)
        subtitle.setObjectName("Muted")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addWidget(self.tabs, 1)

        self.feed.loading.connect(self.progress.setVisible)
        self.feed.loaded.connect(self._loaded)
        self.feed.failed.connect(self._show_message)
        self.proxy.rowsInserted.connect(self._count_changed)
        self.proxy.rowsRemoved.connect(self._count_changed)
        self.proxy.modelReset.connect(self._count_changed)
        self.proxy.layoutChanged.connect(self._count_changed)
        self.proxy.dataChanged.connect(self._count_changed)
        self._update_actions()
        self.feed.start()
        self.api_keys.start()

    def _build_users_page(self) -> QWidget:
        page = QWidget(self)
        self.toolbar = QToolBar(page)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.user_actions.fill_toolbar(self.toolbar)
        self.filter_edit = QLineEdit(page)
        self.filter_edit.setObjectName("UserFilter")
        self.filter_edit.setPlaceholderText("Filter by name")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMaximumWidth(240)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.role_filter = QComboBox(page)
        self.role_filter.setObjectName("RoleFilter")
        self.role_filter.addItem("All roles", None)
        for role in Role:
            self.role_filter.addItem(ROLE_TITLES.get(role, role.value), role.value)
        self.role_filter.currentIndexChanged.connect(self._role_filter_changed)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.toolbar, 1)
        top.addWidget(self.filter_edit)
        top.addWidget(self.role_filter)

        self.progress = busy_bar(page)
        self.message = message_line(page)
        self.table = record_table(page, self.proxy, "UsersTable", sort_column=USERNAME)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.addActions(self.user_actions.all())

        self.count = QLabel(page)
        self.count.setObjectName("Muted")

        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.count)
        return page

    async def shutdown(self) -> None:
        """Stop following `users` events before the client closes."""
        await self.feed.stop()
        await self.api_keys.shutdown()

    # -- selection ----------------------------------------------------------------------

    def selected(self) -> UserView | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.user_at(rows[0]) if rows else None

    def select(self, user_id: int) -> bool:
        """Select the row of `user_id` if it is shown; True when it is."""
        row = self.model.row_of(user_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectRow(index.row())
        self.table.scrollTo(index)
        return True

    # -- actions ------------------------------------------------------------------------

    @async_slot("create the user")
    async def new_user(self) -> None:
        dialog = NewUserDialog(self._client, self)
        try:
            if not await wait_closed(dialog) or dialog.created is None:
                return
            created = dialog.created
        finally:
            dialog.deleteLater()
        self._done(created)

    @async_slot("edit the user")
    async def edit_user(self) -> None:
        user = self.selected()
        if user is None:
            return
        dialog = EditUserDialog(self._client, user, own=user.id == self.me.id, parent=self)
        try:
            if not await wait_closed(dialog) or dialog.updated is None:
                return
            updated = dialog.updated
        finally:
            dialog.deleteLater()
        self._done(updated)

    @async_slot("change the user")
    async def toggle_user(self) -> None:
        user = self.selected()
        if user is None or user.id == self.me.id:
            return
        self._done(await self._client.update_user(user.id, disabled=not user.disabled))

    @async_slot("reset the password")
    async def reset_password(self) -> None:
        user = self.selected()
        if user is None or user.id == self.me.id:
            return
        dialog = ResetPasswordDialog(self._client, user, self)
        try:
            if await wait_closed(dialog):
                self.feed.reload()
        finally:
            dialog.deleteLater()

    @async_slot("delete the user")
    async def delete_user(self) -> None:
        user = self.selected()
        if user is None or user.id == self.me.id:
            return
        shown = f"“{user.username}”" + (f" ({user.display_name})" if user.display_name else "")
        if not await confirm(
            self,
            "Delete user",
            f"Delete the user {shown}?",
            "Delete user",
            "Their sessions end and their API keys stop working. This cannot be undone; "
            "disabling the account instead keeps it for later.",
        ):
            return
        await self._client.delete_user(user.id)
        self.model.remove(user.id)
        # Qt would move the selection to a neighbour: a second Delete must not aim at it.
        self.table.clearSelection()
        self.feed.reload()
        self._update_actions()

    def _done(self, user: UserView) -> None:
        """Show the client's answer at once and select it; the reload confirms it."""
        self.model.upsert(user)
        self._select_after = user.id
        if self.select(user.id):
            self._select_after = None
        self.feed.reload()
        self._update_actions()

    # -- inside -------------------------------------------------------------------------

    def _loaded(self, users: list[UserView]) -> None:
        self.message.hide()
        first = self.model.rowCount() == 0
        self.model.set_records(users)
        if first and users:
            fit_columns(self.table)
        if self._select_after is not None and self.select(self._select_after):
            self._select_after = None
        mine = next((user for user in users if user.id == self.me.id), None)
        if mine is not None and mine.role != self.me.role:
            # Another admin changed this account's role: the actions follow at once.
            run_async(self._refresh_me(), parent=self, what="read your account")
        self._update_actions()

    async def _refresh_me(self) -> None:
        self.me = await self._client.me()
        self.api_keys.set_me(self.me)
        self._update_actions()

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()

    def _count_changed(self, *_: object) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        disabled = sum(1 for user in self.model.records() if user.disabled)
        text = f"{total} user{'s' if total != 1 else ''}"
        if disabled:
            text += f", {disabled} disabled"
        if shown != total:
            text = f"{shown} of {text} shown"
        self.count.setText(text)

    def _role_filter_changed(self, _index: int) -> None:
        value = self.role_filter.currentData()
        self.proxy.set_role(Role(value) if value else None)

    def _selection_changed(self, *_: object) -> None:
        self._update_actions()

    def _update_actions(self) -> None:
        self.user_actions.update(self.me, UserContext(self.me, self.selected()))

    def _double_clicked(self, index: QModelIndex) -> None:
        if index.isValid() and self.user_actions["edit_user"].isEnabled():
            self.user_actions["edit_user"].trigger()

    def _context_menu(self, position: QPoint) -> None:
        index = self.table.indexAt(position)
        if index.isValid():
            self.table.selectRow(index.row())
        self.user_actions.menu(self).popup(self.table.viewport().mapToGlobal(position))
