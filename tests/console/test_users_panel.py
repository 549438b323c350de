"""The Users panel over a real embedded backend: what an admin, an operator and a viewer see and do.

Every test drives the real widgets (toolbar actions, dialogs, the table) on
a `LocalClient` over an embedded core, and checks what a person would read
on screen: the table's cells, hints, tooltips of disabled controls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import shiboken6
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QToolBar, QWidget
from pytestqt.qtbot import QtBot

from console.client.errors import Unauthenticated
from console.client.local import LocalClient
from console.client.types import Permission, Role, UserView
from console.models.api_keys import ApiKeysModel
from console.models.feed import ListFeed
from console.models.records import RECORD_ROLE
from console.models.users import ROLE, STATUS, USERNAME, UsersFilter, UsersModel
from console.panels.api_keys import NO_KEYS, CreateApiKeyDialog, SecretDialog
from console.panels.registry import entry
from console.panels.user_dialogs import EditUserDialog, NewUserDialog, ResetPasswordDialog
from console.panels.users import ADMINS_ONLY, UsersPanel
from console.widgets.confirm import ConfirmBox
from tests.conftest import PASSWORD
from tests.console.conftest import find_window, until


@pytest_asyncio.fixture
async def admin(app: QApplication, embedded_settings: Any) -> AsyncIterator[LocalClient]:
    """A client signed in as the first admin, "ada"."""
    app.setQuitOnLastWindowClosed(False)  # closing a dialog must not stop the qasync loop
    client = await LocalClient.open(embedded_settings)
    try:
        await client.create_first_admin(username="ada", password=PASSWORD, display_name="Ada")
        yield client
    finally:
        await client.close()


async def open_panel(client: LocalClient, qtbot: QtBot) -> UsersPanel:
    panel = UsersPanel(client, await client.me(), None)
    qtbot.addWidget(panel)
    panel.resize(1000, 560)
    panel.show()
    await until(lambda: panel.feed.loads >= 1, what="the users to load")
    return panel


async def close_panel(panel: UsersPanel) -> None:
    await panel.shutdown()
    panel.hide()


def table_rows(panel: UsersPanel) -> list[list[str]]:
    """The users table's cells as shown, top to bottom."""
    proxy = panel.proxy
    return [
        [str(proxy.index(row, column).data()) for column in range(proxy.columnCount())]
        for row in range(proxy.rowCount())
    ]


def usernames(panel: UsersPanel) -> list[str]:
    return [row[USERNAME] for row in table_rows(panel)]


def row_of(panel: UsersPanel, username: str) -> list[str] | None:
    return next((row for row in table_rows(panel) if row[USERNAME] == username), None)


def cell(panel: UsersPanel, username: str, column: int) -> str | None:
    """What the row of `username` shows in `column`; None while the row is not there."""
    row = row_of(panel, username)
    return None if row is None else row[column]


def select(panel: UsersPanel, username: str) -> None:
    for row in range(panel.proxy.rowCount()):
        if panel.proxy.index(row, USERNAME).data() == username:
            panel.table.selectRow(row)
            return
    raise AssertionError(f"{username} is not in the table")


def button_state(toolbar: QToolBar, panel_action: Any) -> tuple[bool, str]:
    """Whether the toolbar button of an action is enabled, and its tooltip."""
    button = toolbar.widgetForAction(panel_action)
    assert button is not None
    return button.isEnabled(), button.toolTip()


async def dialog_of(kind: type[Any]) -> Any:
    return await until(lambda: find_window(kind), what=f"a {kind.__name__}")


async def closed(widget: QWidget) -> None:
    await until(
        lambda: not shiboken6.isValid(widget) or not widget.isVisible(), what="the dialog to close"
    )


@pytest.mark.asyncio
async def test_create_a_user_through_the_dialog(admin: LocalClient, qtbot: QtBot) -> None:
    panel = await open_panel(admin, qtbot)
    assert usernames(panel) == ["ada"]
    assert panel.count.text() == "1 user"

    panel.user_actions["new_user"].trigger()
    dialog: NewUserDialog = await dialog_of(NewUserDialog)
    ok = dialog.ok_button()
    assert not ok.isEnabled()
    assert ok.toolTip() == "Type a username."

    qtbot.keyClicks(dialog.username, "-otto")
    assert dialog.hint("username").startswith("A username is 2 to 64 letters")
    dialog.username.clear()
    qtbot.keyClicks(dialog.username, "Otto")
    assert dialog.hint("username") == ""
    qtbot.keyClicks(dialog.display_name, "Otto Operator")
    dialog.role.setCurrentIndex(dialog.role.findData("operator"))
    qtbot.keyClicks(dialog.password, "short")
    assert dialog.hint("password") == "A password needs at least 8 characters."
    qtbot.keyClicks(dialog.password, " but now long enough")
    qtbot.keyClicks(dialog.confirm, "short but now long")
    assert dialog.hint("confirm") == "The two passwords differ."
    assert not ok.isEnabled()
    qtbot.keyClicks(dialog.confirm, " enough")
    assert dialog.hint("confirm") == ""
    assert ok.isEnabled()

    ok.click()
    await closed(dialog)
    row = await until(lambda: row_of(panel, "otto"), what="otto in the table")
    assert row[1:4] == ["Otto Operator", "Operator", "Enabled"]
    selected = panel.selected()
    assert selected is not None
    assert selected.username == "otto"
    await until(lambda: panel.count.text() == "2 users", what="the count")

    # The backend's refusal is shown in place and what was typed stays.
    panel.user_actions["new_user"].trigger()
    again: NewUserDialog = await dialog_of(NewUserDialog)
    qtbot.keyClicks(again.username, "OTTO")
    qtbot.keyClicks(again.password, "another good one")
    qtbot.keyClicks(again.confirm, "another good one")
    again.ok_button().click()
    await until(again.error_text, what="the backend's error")
    assert again.error_text() == "The username 'otto' is taken."
    assert again.isVisible()
    assert again.username.text() == "OTTO"
    assert again.password.text() == "another good one"
    assert again.username.hasFocus()
    again.reject()
    await close_panel(panel)


@pytest.mark.asyncio
async def test_sort_and_filter(admin: LocalClient, qtbot: QtBot) -> None:
    panel = await open_panel(admin, qtbot)
    for name, role, display in (
        ("vera", "viewer", "Vera Viewer"),
        ("otto", "operator", "Otto"),
        ("bob", "viewer", "Robert Ottoman"),
    ):
        await admin.create_user(username=name, password=PASSWORD, role=role, display_name=display)
    # Created elsewhere (not through the panel): the users events bring them in.
    await until(lambda: len(usernames(panel)) == 4, what="the users events to reload the table")
    assert usernames(panel) == ["ada", "bob", "otto", "vera"]

    header = panel.table.horizontalHeader()
    x = header.sectionViewportPosition(ROLE) + header.sectionSize(ROLE) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    roles = [row[ROLE] for row in table_rows(panel)]
    assert roles in (
        ["Admin", "Operator", "Viewer", "Viewer"],
        ["Viewer", "Viewer", "Operator", "Admin"],
    )
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    assert [row[ROLE] for row in table_rows(panel)] == list(reversed(roles))

    panel.table.sortByColumn(USERNAME, Qt.SortOrder.DescendingOrder)
    assert usernames(panel) == ["vera", "otto", "bob", "ada"]

    qtbot.keyClicks(panel.filter_edit, "OTT")  # username or display name, any case
    assert usernames(panel) == ["otto", "bob"]
    assert panel.count.text() == "2 of 4 users shown"
    panel.role_filter.setCurrentIndex(panel.role_filter.findData("viewer"))
    assert usernames(panel) == ["bob"]
    panel.filter_edit.clear()
    assert usernames(panel) == ["vera", "bob"]
    panel.role_filter.setCurrentIndex(0)
    assert len(usernames(panel)) == 4
    await close_panel(panel)


@pytest.mark.asyncio
async def test_edit_disable_enable_and_delete(admin: LocalClient, qtbot: QtBot) -> None:
    await admin.create_user(username="otto", password=PASSWORD, role="viewer")
    panel = await open_panel(admin, qtbot)
    select(panel, "otto")

    panel.user_actions["edit_user"].trigger()
    dialog: EditUserDialog = await dialog_of(EditUserDialog)
    assert dialog.role.isEnabled()
    dialog.role.setCurrentIndex(dialog.role.findData("operator"))
    dialog.display_name.clear()
    qtbot.keyClicks(dialog.display_name, "Otto the Operator")
    dialog.ok_button().click()
    await closed(dialog)
    await until(lambda: cell(panel, "otto", ROLE) == "Operator", what="the new role")
    assert cell(panel, "otto", 1) == "Otto the Operator"
    otto = panel.selected()
    assert otto is not None
    assert (await admin.get_user(otto.id)).role is Role.OPERATOR

    toggle = panel.user_actions["toggle_user"]
    assert toggle.text() == "Disable"
    toggle.trigger()
    await until(lambda: cell(panel, "otto", STATUS) == "Disabled", what="otto disabled")
    assert toggle.text() == "Enable"
    assert panel.count.text() == "2 users, 1 disabled"
    assert panel.proxy.index(1, USERNAME).data(Qt.ItemDataRole.ForegroundRole) is not None
    toggle.trigger()
    await until(lambda: cell(panel, "otto", STATUS) == "Enabled", what="otto enabled")

    panel.user_actions["delete_user"].trigger()
    box: ConfirmBox = await dialog_of(ConfirmBox)
    assert box.text() == "Delete the user “otto” (Otto the Operator)?"
    assert "cannot be undone" in box.informativeText()
    box.cancel_button.click()
    await closed(box)
    assert row_of(panel, "otto") is not None

    panel.user_actions["delete_user"].trigger()
    box = await dialog_of(ConfirmBox)
    assert box.confirm_button.text() == "Delete user"
    box.confirm_button.click()
    await until(lambda: row_of(panel, "otto") is None, what="otto gone from the table")
    assert [user.username for user in await admin.list_users()] == ["ada"]
    assert panel.selected() is None
    assert panel.user_actions.reason("delete_user") == "Select a user to delete."
    await close_panel(panel)


@pytest.mark.asyncio
async def test_reset_password_then_sign_in_with_it(admin: LocalClient, qtbot: QtBot) -> None:
    await admin.create_user(username="otto", password=PASSWORD, role="operator")
    panel = await open_panel(admin, qtbot)
    select(panel, "otto")
    panel.user_actions["reset_password"].trigger()
    dialog: ResetPasswordDialog = await dialog_of(ResetPasswordDialog)
    assert "otto" in dialog.windowTitle()
    qtbot.keyClicks(dialog.password, "a fresh start for otto")
    qtbot.keyClicks(dialog.confirm, "a fresh start for otto")
    dialog.ok_button().click()
    await closed(dialog)
    await close_panel(panel)

    await admin.sign_out()
    with pytest.raises(Unauthenticated):
        await admin.sign_in("otto", PASSWORD)
    me = await admin.sign_in("otto", "a fresh start for otto")
    assert me.username == "otto"


@pytest.mark.asyncio
async def test_own_account_cannot_be_disabled_demoted_or_deleted(
    admin: LocalClient, qtbot: QtBot
) -> None:
    panel = await open_panel(admin, qtbot)
    assert panel.proxy.index(0, USERNAME).data(Qt.ItemDataRole.FontRole).bold()
    select(panel, "ada")
    for key, reason in (
        ("toggle_user", "You cannot disable your own account."),
        ("delete_user", "You cannot delete your own account."),
        (
            "reset_password",
            "Change your own password from your account menu (it needs the current one).",
        ),
    ):
        assert button_state(panel.toolbar, panel.user_actions[key]) == (False, reason)
    enabled, _tip = button_state(panel.toolbar, panel.user_actions["edit_user"])
    assert enabled
    panel.user_actions["edit_user"].trigger()
    dialog: EditUserDialog = await dialog_of(EditUserDialog)
    assert not dialog.role.isEnabled()
    assert "your own role" in dialog.role.toolTip()
    dialog.reject()
    await close_panel(panel)


@pytest.mark.asyncio
async def test_a_viewer_sees_write_controls_disabled_with_the_reason(
    admin: LocalClient, qtbot: QtBot
) -> None:
    await admin.create_user(username="vera", password=PASSWORD, role="viewer")
    await admin.create_user(username="otto", password=PASSWORD, role="operator")
    await admin.sign_out()
    await admin.sign_in("vera", PASSWORD)
    panel = await open_panel(admin, qtbot)
    assert usernames(panel) == ["ada", "otto", "vera"]
    select(panel, "otto")
    for key in ("new_user", "edit_user", "toggle_user", "reset_password", "delete_user"):
        assert button_state(panel.toolbar, panel.user_actions[key]) == (False, ADMINS_ONLY)
    keys = panel.api_keys
    assert button_state(keys.toolbar, keys.key_actions["create_key"]) == (False, NO_KEYS)
    assert not keys.message.isHidden()
    assert keys.message.text() == NO_KEYS
    assert panel.tabs.tabToolTip(1) == NO_KEYS
    panel.table.doubleClicked.emit(panel.proxy.index(1, 0))  # no edit dialog for a viewer
    assert find_window(EditUserDialog) is None
    await close_panel(panel)


@pytest.mark.asyncio
async def test_an_operator_creates_a_key_within_their_role_and_sees_it_once(
    admin: LocalClient, qtbot: QtBot
) -> None:
    await admin.create_user(username="otto", password=PASSWORD, role="operator")
    await admin.sign_out()
    me = await admin.sign_in("otto", PASSWORD)
    panel = await open_panel(admin, qtbot)
    keys = panel.api_keys
    panel.tabs.setCurrentWidget(keys)
    await until(lambda: keys.feed.loads >= 1, what="the keys to load")
    assert keys.proxy.rowCount() == 0
    enabled, _tip = button_state(keys.toolbar, keys.key_actions["create_key"])
    assert enabled

    keys.key_actions["create_key"].trigger()
    dialog: CreateApiKeyDialog = await dialog_of(CreateApiKeyDialog)
    assert sorted(dialog.scopes) == sorted(me.permissions)  # only what the role has
    assert Permission.USERS_WRITE.value not in dialog.scopes
    assert dialog.ok_button().toolTip() == "Name the key after what will use it."
    qtbot.keyClicks(dialog.name, "agent on web-01")
    assert dialog.ok_button().toolTip() == "Choose at least one scope."
    dialog.scopes[Permission.METRICS_WRITE.value].setChecked(True)
    assert dialog.ok_button().isEnabled()
    dialog.ok_button().click()

    secret_dialog: SecretDialog = await dialog_of(SecretDialog)
    secret = secret_dialog.secret.text()
    assert secret
    assert "will not be shown again" in secret_dialog.warning.text()
    secret_dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == secret
    assert secret_dialog.copy_button.text() == "Copied"
    secret_dialog.done_button.click()
    await closed(secret_dialog)
    assert secret_dialog.secret.text() == ""

    await until(lambda: keys.proxy.rowCount() == 1, what="the key in the table")
    cells = [str(keys.proxy.index(0, column).data()) for column in range(6)]
    assert cells[0] == "agent on web-01"
    assert secret.startswith(cells[1]) or cells[1] in secret
    assert cells[2] == "metrics:write"
    assert cells[4] == "Never"
    assert cells[5] == "—"
    assert not any(secret in cell for cell in cells)  # the secret is never shown again
    listed = await admin.list_api_keys()
    assert [key.name for key in listed] == ["agent on web-01"]
    await close_panel(panel)


@pytest.mark.asyncio
async def test_revoke_a_key_with_confirmation(admin: LocalClient, qtbot: QtBot) -> None:
    created = await admin.create_api_key(name="old agent", scopes=["metrics:write"])
    panel = await open_panel(admin, qtbot)
    keys = panel.api_keys
    panel.tabs.setCurrentWidget(keys)
    await until(lambda: keys.proxy.rowCount() == 1, what="the key to load")
    assert keys.key_actions.reason("revoke_key") == "Select a key to revoke."
    keys.table.selectRow(0)
    keys.key_actions["revoke_key"].trigger()
    box: ConfirmBox = await dialog_of(ConfirmBox)
    assert box.text() == f"Revoke the key “old agent” ({created.key.prefix}…)?"
    box.confirm_button.click()
    await until(lambda: keys.proxy.index(0, 5).data() != "—", what="the revoked time")
    assert keys.key_actions.reason("revoke_key") == "This key is already revoked."
    listed = await admin.list_api_keys()
    assert listed[0].revoked_at is not None
    await close_panel(panel)


@pytest.mark.asyncio
async def test_the_panel_is_registered(admin: LocalClient, qtbot: QtBot) -> None:
    factory = entry("users").load()
    assert factory is UsersPanel


# -- the models -----------------------------------------------------------------------------


def _user(user_id: int, name: str, role: Role, *, disabled: bool = False) -> UserView:
    return UserView(
        id=user_id,
        username=name,
        display_name=name.title(),
        role=role,
        disabled=disabled,
        created_at=1_700_000_000.0 + user_id,
        updated_at=1_700_000_500.0 + user_id,
    )


def test_the_users_model_and_its_proxy_pass_the_model_tester(
    app: QApplication, qtmodeltester: Any
) -> None:
    model = UsersModel(me_id=1)
    model.set_records([_user(1, "ada", Role.ADMIN), _user(2, "otto", Role.OPERATOR, disabled=True)])
    qtmodeltester.check(model)
    proxy = UsersFilter()
    proxy.setSourceModel(model)
    proxy.sort(ROLE, Qt.SortOrder.DescendingOrder)
    qtmodeltester.check(proxy)
    # Merges keep rows: an update, a removal and an insertion under the tester's eye.
    model.set_records(
        [_user(2, "otto", Role.VIEWER), _user(3, "vera", Role.VIEWER), _user(1, "ada", Role.ADMIN)]
    )
    model.remove(1)
    model.upsert(_user(4, "bob", Role.OPERATOR))
    proxy.set_text("o")
    proxy.set_role(Role.VIEWER)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["otto"]
    assert isinstance(proxy.index(0, 3).data(RECORD_ROLE), UserView)


def test_the_api_keys_model_passes_the_model_tester(app: QApplication, qtmodeltester: Any) -> None:
    from console.client.types import ApiKeyView

    def key(key_id: int, revoked: float | None) -> ApiKeyView:
        return ApiKeyView(
            id=key_id,
            user_id=1,
            name=f"key {key_id}",
            prefix=f"qdk_{key_id:04d}",
            scopes=["metrics:write"],
            created_at=1_700_000_000.0,
            last_used_at=None,
            revoked_at=revoked,
        )

    model = ApiKeysModel()
    model.set_records([key(1, None), key(2, 1_700_000_100.0)])
    qtmodeltester.check(model)
    model.set_records([key(2, 1_700_000_100.0), key(3, None)])
    assert model.rowCount() == 2


@pytest.mark.asyncio
async def test_the_feed_coalesces_a_burst_into_one_load(app: QApplication) -> None:
    owner = QWidget()
    calls: list[int] = []
    gate = asyncio.Event()

    async def load() -> list[int]:
        calls.append(len(calls))
        await gate.wait()
        return list(calls)

    feed = ListFeed(load, owner, what="numbers", delay_ms=20)
    shown: list[list[int]] = []
    feed.loaded.connect(shown.append)
    for _ in range(10):
        feed.reload()
    await until(lambda: calls, what="the first load")
    for _ in range(10):  # asked while loading: one more load after it, not ten, not parallel
        feed.reload()
    await asyncio.sleep(0.1)
    assert calls == [0]
    gate.set()
    await until(lambda: feed.loads == 2, what="the second load")
    await asyncio.sleep(0.1)
    assert calls == [0, 1]
    assert shown == [[0], [0, 1]]
    await feed.stop()
    feed.reload()
    await asyncio.sleep(0.1)
    assert feed.loads == 2  # stopped: nothing starts by itself
    owner.deleteLater()
