"""Remote profiles against a real server (uvicorn on a loopback port, in a thread).

What only a remote connection meets, seen from the window: nobody listening,
an untrusted certificate and the CA file that fixes it, several servers
open at once, and sign-ins remembered per profile.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from backend.config import Settings
from console.client.local import LocalClient
from console.connections import Connector, Profile, ProfileStore
from console.startup import Shell
from console.widgets.signin import SignInDialog
from tests.api.server import RunningServer, running_server, self_signed
from tests.console.conftest import MemoryKeyring, find_window, open_shell, until

PASSWORD = "correct horse battery"


async def seed(settings: Settings) -> None:
    client = await LocalClient.open(settings)
    try:
        await client.create_first_admin(username="ada", password=PASSWORD)
    finally:
        await client.close()


@pytest.fixture
def server(embedded_settings: Settings) -> Iterator[RunningServer]:
    with running_server(embedded_settings) as running:
        yield running


@pytest.fixture
def tls_server(embedded_settings: Settings, tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    cert, key = self_signed(tmp_path)
    with running_server(embedded_settings, tls=(cert, key)) as running:
        yield running, cert


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def connect(shell: Shell, profile: Profile) -> SignInDialog:
    window = shell.show_connections()
    window.reload(select=profile.key)
    window.connect_button.click()
    return await until(lambda: find_window(SignInDialog), what="the sign-in dialog")


@pytest.mark.asyncio
async def test_an_unreachable_server_says_so_and_keeps_what_was_typed(app: QApplication) -> None:
    async with open_shell(Connector()) as shell:
        profile = ProfileStore().save(
            Profile(name="Nowhere", url=f"http://127.0.0.1:{closed_port()}", username="ada")
        )
        dialog = await connect(shell, profile)
        assert dialog.username.text() == "ada"  # prefilled from the profile
        dialog.password.setText(PASSWORD)
        dialog.ok_button().click()
        await until(dialog.error_text, what="the error")
        assert dialog.error_text().startswith("Cannot reach the server.")
        assert "127.0.0.1" in dialog.error_text()
        assert dialog.username.text() == "ada"
        assert dialog.password.text() == PASSWORD
        assert not shell.windows


@pytest.mark.asyncio
async def test_an_untrusted_certificate_says_so_until_its_ca_is_given(
    app: QApplication, embedded_settings: Settings, tls_server: tuple[RunningServer, Path]
) -> None:
    async with open_shell(Connector()) as shell:
        await seed(embedded_settings)
        running, cert = tls_server
        store = ProfileStore()
        profile = store.save(Profile(name="Private CA", url=running.url, username="ada"))
        dialog = await connect(shell, profile)
        dialog.password.setText(PASSWORD)
        dialog.ok_button().click()
        await until(dialog.error_text, what="the error")
        assert "certificate is not trusted" in dialog.error_text()
        assert "certificate file in the profile" in dialog.error_text()
        dialog.reject()
        await until(lambda: find_window(SignInDialog) is None, what="the dialog to close")

        trusted = store.save(Profile(**{**_fields(profile), "ca_file": str(cert)}))
        dialog = await connect(shell, trusted)
        dialog.password.setText(PASSWORD)
        dialog.ok_button().click()
        main = await until(lambda: shell.windows.get(trusted.key), what="the main window")
        assert main.me.username == "ada"
        assert not main.client.embedded


@pytest.mark.asyncio
async def test_two_servers_at_once_each_remembered(
    app: QApplication,
    embedded_settings: Settings,
    server: RunningServer,
    memory_keyring: MemoryKeyring,
) -> None:
    async with open_shell(Connector()) as shell:
        await seed(embedded_settings)
        store = ProfileStore()
        first = store.save(Profile(name="Blue", url=server.url, username="ada"))
        second = store.save(Profile(name="Green", url=server.url, username="ada"))
        for profile in (first, second):
            dialog = await connect(shell, profile)
            dialog.password.setText(PASSWORD)
            dialog.remember.setChecked(True)
            dialog.ok_button().click()
            await until(lambda p=profile: shell.windows.get(p.key), what=f"{profile.name}'s window")
        assert {w.client.name for w in shell.windows.values()} == {"Blue", "Green"}
        await until(lambda: len(memory_keyring.entries) == 2, what="both sign-ins remembered")
        assert {key for _, key in memory_keyring.entries} == {first.key, second.key}

        blue = shell.windows[first.key]
        blue.close()
        await until(lambda: first.key not in shell.windows, what="Blue released")
        window = shell.show_connections()
        window.reload(select=first.key)
        window.connect_button.click()
        again = await until(lambda: shell.windows.get(first.key), what="Blue resumed")
        assert again.me.username == "ada"
        assert find_window(SignInDialog) is None
        assert len(shell.windows) == 2


def _fields(profile: Profile) -> dict[str, object]:
    return {name: getattr(profile, name) for name in Profile.__dataclass_fields__}
