"""Screenshots of the shell, light and dark, for a person to look at.

Saved to `$QUARTERDECK_SCREENSHOTS` when set (docs/screenshots/ holds the
committed ones), else to the test's directory. The test checks only that
something was drawn; the looking is done by a person.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QApplication, QWidget

from backend.config import Settings
from console import theme
from console.asyncslots import cancel_all
from console.client.local import LocalClient
from console.connections import EMBEDDED_ID, Connector, Keychain, Profile, ProfileStore
from console.startup import Shell
from console.widgets.signin import FirstAdminDialog, SignInDialog
from tests.console.conftest import find_window, until

PASSWORD = "correct horse battery"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("QUARTERDECK_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(params=list(theme.Theme), ids=lambda t: t.value)
def themed(request: pytest.FixtureRequest, app: QApplication) -> Iterator[theme.Theme]:
    manager = theme.install(app)
    chosen: theme.Theme = request.param
    manager.set_theme(chosen)
    yield chosen
    manager.set_theme(None)


async def save(widget: QWidget, path: Path) -> None:
    # Let pending paints and layouts run on the loop (never processEvents() inside a
    # coroutine: it would run other tasks' steps nested in this one).
    await asyncio.sleep(0.1)
    image = widget.grab().toImage()
    assert not image.isNull()
    assert image.width() > 100
    colours = {
        image.pixel(x, y) for x in range(0, image.width(), 5) for y in range(0, image.height(), 5)
    }
    assert len(colours) > 8, "nothing much was drawn"
    assert image.save(str(path))


@pytest.mark.asyncio
async def test_the_shell_light_and_dark(
    themed: theme.Theme, shots: Path, embedded_settings: Settings
) -> None:
    name = themed.value
    ProfileStore().save(Profile(name="Production", url="https://qd.example:8443", username="ada"))
    ProfileStore().save(Profile(name="Lab", url="http://127.0.0.1:8080", username="otto"))
    shell = Shell(Connector(embedded_settings), ProfileStore(), Keychain())
    try:
        window = shell.show_connections()
        window.resize(QSize(640, 420))
        await save(window, shots / f"connect-{name}.png")

        window.select(EMBEDDED_ID)
        window.connect_button.click()
        first = await until(lambda: find_window(FirstAdminDialog), what="the first-admin dialog")
        await save(first, shots / f"first-admin-{name}.png")
        first.reject()
        await until(lambda: not window.progress.isVisible(), what="the window idle")

        client = await LocalClient.open(embedded_settings)
        try:
            await client.create_first_admin(username="ada", password=PASSWORD)
        finally:
            await client.close()
        window.connect_button.click()
        sign_in = await until(lambda: find_window(SignInDialog), what="the sign-in dialog")
        sign_in.username.setText("ada")
        sign_in.password.setText("not it")
        sign_in.ok_button().click()
        await until(sign_in.error_text, what="the error")
        await save(sign_in, shots / f"sign-in-error-{name}.png")
        sign_in.password.setText(PASSWORD)
        sign_in.ok_button().click()
        main = await until(lambda: shell.windows.get(EMBEDDED_ID), what="the main window")
        main.resize(QSize(1100, 700))
        await until(main.top_bar.indicator.latency_text, what="a latency")
        main.show_panel("overview")
        await save(main, shots / f"main-overview-{name}.png")
        main.show_panel("alerts")
        await save(main, shots / f"main-alerts-{name}.png")
        main.top_bar.change_password_action.trigger()
        await asyncio.sleep(0.05)
    finally:
        shell.quit()
        await asyncio.wait_for(shell.finished(), 30)
        await cancel_all()
        shell.deleteLater()
