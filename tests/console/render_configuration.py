"""Render the Configuration panel with realistic data, light and dark, for a person to look at.

    QT_QPA_PLATFORM=offscreen python -m tests.console.render_configuration docs/screenshots

An embedded core in a temporary directory; "ada" and "bob" leave some
history; the panel is shown with the lockout selected and an old version
compared, one unsaved edit, one value refused inline, and one setting bob
changed while ada was editing it. Writes panel-config-light.png and
panel-config-dark.png.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QSpinBox

from backend.config import Settings
from backend.domain.permissions import Role
from backend.domain.principal import Principal
from console import theme
from console.client.local import LocalClient
from console.panels.configuration import ConfigurationPanel
from console.widgets.setting_editors import NumberEditor
from tests.conftest import PASSWORD, TEST_SECRET
from tests.qtloop import new_qasync_loop


def _spin(panel: ConfigurationPanel, key: str) -> QSpinBox:
    editor = panel.rows[key].editor
    assert isinstance(editor, NumberEditor)
    assert isinstance(editor.box, QSpinBox)
    return editor.box


def _type(panel: ConfigurationPanel, key: str, text: str) -> None:
    box = _spin(panel, key)
    box.setFocus()
    box.selectAll()
    QTest.keyClick(box, Qt.Key.Key_Backspace)
    if text:
        QTest.keyClicks(box, text)


async def _settle(seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)


async def render(folder: Path) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    manager = theme.install(app)
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            data_dir=Path(data),
            secret_key=TEST_SECRET,
            run_jobs=False,
            collect_local=False,
            live_events=False,
        )
        client = await LocalClient.open(settings)
        try:
            await client.create_first_admin(username="ada", password=PASSWORD)
            bob_view = await client.create_user(username="bob", password=PASSWORD, role="admin")
            bob = Principal.for_user(user_id=bob_view.id, username="bob", role=Role.ADMIN)
            lockout = "auth.lockout_minutes"
            await client.write_setting(lockout, 20, expected_version=0, reason="after the pen test")
            await client.backend_call(
                lambda core: core.settings.write(
                    bob, lockout, 30, expected_version=1, reason="night shift kept locking out"
                )
            )
            await client.write_setting(lockout, 25, expected_version=2, reason="compromise")
            await client.write_setting(
                "notify.smtp_host", "mail.example.net", expected_version=0, reason="new relay"
            )
            await client.write_setting(
                "notify.smtp_password", "s3cret", expected_version=0, reason="relay account"
            )

            panel = ConfigurationPanel(client, await client.me())
            panel.resize(1040, 760)
            panel.show()
            await panel.load_task
            _type(panel, "auth.access_token_minutes", "10")
            _type(panel, "auth.lockout_threshold", "8")
            await client.backend_call(
                lambda core: core.settings.write(
                    bob, "auth.lockout_threshold", 4, expected_version=0, reason="tighter"
                )
            )
            _type(panel, "auth.session_hours", "")  # the focus stays: the problem shows
            await _settle()
            panel.select(lockout)
            await _settle()
            panel.history.selectRow(panel.history_model.row_of(2))
            for name in (theme.Theme.LIGHT, theme.Theme.DARK):
                manager.set_theme(name)
                await _settle(0.2)
                target = folder / f"panel-config-{name.value}.png"
                panel.grab().save(str(target))
                print(target)
            await panel.shutdown()
            panel.close()
        finally:
            await client.close()


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    loop = new_qasync_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(render(folder))


if __name__ == "__main__":
    main()
