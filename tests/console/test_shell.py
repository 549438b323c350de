"""The start-up flow and the main window, end to end on a real embedded backend.

Each test drives the real `Shell` with a real `LocalClient` over a real
`Core` on SQLite (in the test's directory), clicking the same buttons a
person would. Async tests on the qasync loop, as the app runs.
"""

from __future__ import annotations

import keyring
import pytest
import shiboken6
from keyring.backends import fail
from PySide6.QtCore import QSettings, QSize
from PySide6.QtWidgets import QApplication

from backend.config import Settings
from console.client.local import LocalClient
from console.client.types import ConnectionState
from console.connections import EMBEDDED_ID, Connector
from console.connectwindow import ConnectionWindow
from console.mainwindow import MainWindow
from console.panels.placeholder import PlaceholderPanel
from console.panels.registry import NAVIGATION, ClosablePanel
from console.startup import Shell
from console.widgets.password import ChangePasswordDialog
from console.widgets.signin import FirstAdminDialog, SignInDialog
from tests.console.conftest import MemoryKeyring, find_window, open_shell, until

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse"


async def seed_admin(settings: Settings, username: str = "ada") -> None:
    """An installation that already has its admin (not the first run any more)."""
    client = await LocalClient.open(settings)
    try:
        await client.create_first_admin(username=username, password=PASSWORD)
    finally:
        await client.close()


async def choose_embedded(shell: Shell) -> ConnectionWindow:
    window = shell.show_connections()
    window.select(EMBEDDED_ID)
    window.connect_button.click()
    return window


async def sign_in(
    shell: Shell, username: str = "ada", password: str = PASSWORD, *, remember: bool = False
) -> MainWindow:
    await choose_embedded(shell)
    dialog = await until(lambda: find_window(SignInDialog), what="the sign-in dialog")
    dialog.username.setText(username)
    dialog.password.setText(password)
    dialog.remember.setChecked(remember)
    dialog.ok_button().click()
    return await until(lambda: shell.windows.get(EMBEDDED_ID), what="the main window")


@pytest.mark.asyncio
async def test_first_run_creates_the_admin_and_opens_the_main_window(
    app: QApplication,
    embedded_settings: Settings,
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await choose_embedded(shell)
        dialog = await until(lambda: find_window(FirstAdminDialog), what="the first-admin dialog")
        dialog.username.setText("ada")
        dialog.password.setText(PASSWORD)
        dialog.confirm.setText("something else")
        dialog.ok_button().click()
        await until(dialog.error_text, what="the mismatch message")
        assert "differ" in dialog.error_text()
        assert dialog.username.text() == "ada"

        dialog.confirm.setText(PASSWORD)
        dialog.ok_button().click()
        main = await until(lambda: shell.windows.get(EMBEDDED_ID), what="the main window")
        assert main.isVisible()
        assert main.me.username == "ada"
        assert "ada (admin)" in main.top_bar.user_button.text()
        await until(lambda: shell.connection_window is None, what="the connection window to close")
        # The first page is the first navigation entry, not built yet: a placeholder says so.
        assert main.current_key() == NAVIGATION[0].key


@pytest.mark.asyncio
async def test_a_wrong_password_says_so_and_keeps_the_username(
    app: QApplication, embedded_settings: Settings
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        await choose_embedded(shell)
        dialog = await until(lambda: find_window(SignInDialog), what="the sign-in dialog")
        dialog.username.setText("ada")
        dialog.password.setText("not the password")
        dialog.ok_button().click()
        await until(dialog.error_text, what="the error message")
        assert dialog.error_text() == "Wrong username or password."
        assert dialog.username.text() == "ada"
        assert dialog.password.text() == "not the password"
        assert dialog.isVisible()
        assert not shell.windows

        dialog.password.setText(PASSWORD)
        dialog.ok_button().click()
        main = await until(lambda: shell.windows.get(EMBEDDED_ID), what="the main window")
        assert main.me.username == "ada"


@pytest.mark.asyncio
async def test_a_locked_account_says_so(app: QApplication, embedded_settings: Settings) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        await choose_embedded(shell)
        dialog = await until(lambda: find_window(SignInDialog), what="the sign-in dialog")
        dialog.username.setText("ada")
        for _ in range(6):
            dialog.password.setText("wrong password")
            dialog.ok_button().click()
            await until(lambda: not dialog.busy and dialog.error_text(), what="an answer")
            if "locked" in dialog.error_text():
                break
        assert "locked" in dialog.error_text()
        assert "Try again in" in dialog.error_text()
        assert dialog.username.text() == "ada"


@pytest.mark.asyncio
async def test_navigation_switches_panels(app: QApplication, embedded_settings: Settings) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        main = await sign_in(shell)
        for row, nav_entry in enumerate(NAVIGATION):
            main.nav.setCurrentRow(row)
            assert main.current_key() == nav_entry.key
            page = main.stack.currentWidget()
            assert page is main.page(nav_entry.key)
            if nav_entry.panel is None:
                assert isinstance(page, PlaceholderPanel)
                assert page.message() == nav_entry.not_built
        alerts = main.page("alerts")
        assert isinstance(alerts, PlaceholderPanel)
        assert "Alerting is not built yet" in alerts.message()
        # Pages are built once and kept.
        assert main.show_panel("users") is main.page("users")


@pytest.mark.asyncio
async def test_a_viewer_sees_the_audit_entry_disabled(
    app: QApplication, embedded_settings: Settings
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        client = await LocalClient.open(embedded_settings)
        try:
            await client.create_first_admin(username="ada", password=PASSWORD)
            await client.create_user(username="vera", password=PASSWORD, role="viewer")
        finally:
            await client.close()
        main = await sign_in(shell, "vera")
        row = [e.key for e in NAVIGATION].index("audit")
        item = main.nav.item(row)
        assert item is not None
        assert not item.flags() & item.flags().ItemIsEnabled
        assert "audit" in item.toolTip()
        main.show_panel("audit")
        assert main.current_key() != "audit"


@pytest.mark.asyncio
async def test_change_password(app: QApplication, embedded_settings: Settings) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        main = await sign_in(shell)
        main.top_bar.change_password_action.trigger()
        dialog = await until(lambda: find_window(ChangePasswordDialog), what="the dialog")
        dialog.current.setText("not my password")
        dialog.new.setText(NEW_PASSWORD)
        dialog.confirm.setText(NEW_PASSWORD)
        dialog.ok_button().click()
        await until(dialog.error_text, what="the error")
        assert dialog.error_text() == "The current password is not correct."
        assert dialog.new.text() == NEW_PASSWORD

        dialog.current.setText(PASSWORD)
        dialog.ok_button().click()
        await until(
            lambda: not (shiboken6.isValid(dialog) and dialog.isVisible()),
            what="the dialog to close",
        )
        # Said once the dialog's coroutine resumes, a turn of the loop after it closed.
        await until(lambda: "changed" in main.statusBar().currentMessage(), what="the note")

        # The new password is the one that works now.
        client = await LocalClient.open(embedded_settings)
        try:
            me = await client.sign_in("ada", NEW_PASSWORD)
            assert me.username == "ada"
        finally:
            await client.close()


@pytest.mark.asyncio
async def test_sign_out_returns_to_the_connection_window(
    app: QApplication, embedded_settings: Settings, memory_keyring: MemoryKeyring
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        main = await sign_in(shell, remember=True)
        await until(lambda: memory_keyring.entries, what="the sign-in to be remembered")
        client = main.client
        main.top_bar.sign_out_action.trigger()
        window = await until(lambda: find_window(ConnectionWindow), what="the connection window")
        await until(
            lambda: client.status.state is ConnectionState.OFFLINE, what="the client closed"
        )
        assert not shell.windows
        assert not shiboken6.isValid(main)  # closed and deleted
        selected = window.selected()
        assert selected is not None
        assert selected.key == EMBEDDED_ID
        # Signing out forgets the remembered sign-in.
        await until(lambda: not memory_keyring.entries, what="the keychain entry to go")


@pytest.mark.asyncio
async def test_remember_me_resumes_and_forget_removes_it(
    app: QApplication, embedded_settings: Settings, memory_keyring: MemoryKeyring
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        main = await sign_in(shell, remember=True)
        await until(lambda: memory_keyring.entries, what="the sign-in to be remembered")
        [(service, key)] = memory_keyring.entries
        assert (service, key) == ("Quarterdeck", EMBEDDED_ID)
        client = main.client
        main.close()
        await until(lambda: shell.idle, what="the client to be released")
        # The stored token is the newest one: presenting it resumes the session, no dialog.
        assert memory_keyring.entries[(service, key)] == client.refresh_token

        await choose_embedded(shell)
        again = await until(lambda: shell.windows.get(EMBEDDED_ID), what="the resumed window")
        assert again.me.username == "ada"
        assert find_window(SignInDialog) is None
        again.close()
        await until(lambda: shell.idle, what="the client to be released")

        window = shell.show_connections()
        window.select(EMBEDDED_ID)
        await until(window.forget_button.isEnabled, what="Forget to be offered")
        window.forget_button.click()
        await until(lambda: not memory_keyring.entries, what="the keychain entry to go")
        assert "removed" in window.message_text()
        await choose_embedded(shell)
        await until(lambda: find_window(SignInDialog), what="the sign-in dialog again")


@pytest.mark.asyncio
async def test_an_ended_remembered_session_asks_for_the_password(
    app: QApplication, embedded_settings: Settings, memory_keyring: MemoryKeyring
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        memory_keyring.set_password("Quarterdeck", EMBEDDED_ID, "a token that never existed")
        await choose_embedded(shell)
        dialog = await until(lambda: find_window(SignInDialog), what="the sign-in dialog")
        assert "remembered sign-in has ended" in dialog.error_text()
        assert not memory_keyring.entries


@pytest.mark.asyncio
async def test_without_a_keychain_it_says_so_and_signs_in(
    app: QApplication, embedded_settings: Settings
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        keyring.set_keyring(fail.Keyring())  # the memory_keyring fixture restores the previous one
        await seed_admin(embedded_settings)
        window = await choose_embedded(shell)
        assert "no keychain" in window.keychain_note.text()
        assert window.keychain_note.isVisibleTo(window)
        dialog = await until(lambda: find_window(SignInDialog), what="the sign-in dialog")
        assert not dialog.remember.isEnabled()
        assert "no keychain" in dialog.remember.toolTip()
        dialog.username.setText("ada")
        dialog.password.setText(PASSWORD)
        dialog.ok_button().click()
        main = await until(lambda: shell.windows.get(EMBEDDED_ID), what="the main window")
        assert main.me.username == "ada"


@pytest.mark.asyncio
async def test_the_status_indicator_follows_the_client(
    app: QApplication, embedded_settings: Settings
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        main = await sign_in(shell)
        indicator = main.top_bar.indicator
        await until(lambda: indicator.state_text() == "Live", what="live")
        await until(indicator.latency_text, what="a measured latency")
        assert indicator.latency_text().endswith("ms")
        # As the shell does before it closes a client, the panels stop their work first
        # (a query cut off by the closing core would leave its connection unclosed).
        for page in main.built_pages().values():
            if isinstance(page, ClosablePanel):
                await page.shutdown()
        await main.client.close()
        await until(lambda: indicator.state_text() == "Offline", what="offline")
        assert indicator.latency_text() == ""


@pytest.mark.asyncio
async def test_one_window_per_connection_and_layout_remembered(
    app: QApplication, embedded_settings: Settings
) -> None:
    async with open_shell(Connector(embedded_settings)) as shell:
        await seed_admin(embedded_settings)
        main = await sign_in(shell)
        main.resize(QSize(720, 520))
        main.show_panel("configuration")
        # Choosing the same connection again raises its window instead of a second backend.
        await choose_embedded(shell)
        assert await until(lambda: shell.connection_window is None, what="the chooser to close")
        assert list(shell.windows.values()) == [main]
        main.close()
        await until(lambda: shell.idle, what="the client to be released")

        settings = QSettings()
        assert settings.value(f"windows/{EMBEDDED_ID}/panel") == "configuration"
        again = await sign_in(shell)
        assert again is not main
        assert again.size() == QSize(720, 520)
        assert again.current_key() == "configuration"
