"""The Configuration panel, driven as a person would, over a real embedded core.

The panel runs on a `LocalClient` signed in as the admin "ada" (or a
viewer, an operator). "Someone else" is the admin "bob" writing through
the same core, so his changes also reach the panel as `settings` events,
exactly as a second console's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QSpinBox,
    QWidget,
)
from pytestqt.qtbot import QtBot

from backend.config import Settings
from backend.domain.permissions import Role
from backend.domain.principal import Principal
from console.client.local import LocalClient
from console.client.types import SettingView
from console.models.setting_history import SettingHistoryModel
from console.models.settings import STATE_ROLE, SettingsState, SettingsTreeModel
from console.models.settingspec import MASK
from console.panels.configuration import ConfigurationPanel
from console.panels.configuration_dialogs import (
    ConflictDialog,
    ExportDialog,
    ImportDialog,
    RollbackDialog,
    SaveDialog,
)
from console.widgets.forms import FormDialog
from console.widgets.setting_editors import (
    BoolEditor,
    ChoiceEditor,
    NumberEditor,
    SecretEditor,
    TextEditor,
)
from console.widgets.setting_row import SettingRow
from tests.conftest import PASSWORD
from tests.console.conftest import until

W = TypeVar("W", bound=QWidget)
LOCKOUT = "auth.lockout_minutes"
INTERVAL = "collector.interval_seconds"
PASSWORD_KEY = "notify.smtp_password"
NOT_WRITER = "Your role cannot change settings (needs settings:write)."
NO_SECRETS = "Your role cannot read or change secrets (needs settings:secrets)."


@pytest_asyncio.fixture
async def client(embedded_settings: Settings) -> AsyncIterator[LocalClient]:
    """Signed in as the admin "ada"; "bob" (admin), "otto" (operator), "vera" (viewer) exist."""
    opened = await LocalClient.open(embedded_settings)
    try:
        await opened.create_first_admin(username="ada", password=PASSWORD)
        for name, role in (("bob", "admin"), ("otto", "operator"), ("vera", "viewer")):
            await opened.create_user(username=name, password=PASSWORD, role=role)
        yield opened
    finally:
        await opened.close()


OpenPanel = Callable[[], contextlib.AbstractAsyncContextManager[ConfigurationPanel]]


@pytest.fixture
def open_panel(client: LocalClient, qtbot: QtBot, app: QApplication) -> OpenPanel:
    """Build the panel as the window does, shown, loaded and live; shut down on leaving.

    The shutdown happens inside the test, while the loop still runs: pytest-qt
    processes Qt events before fixtures are torn down, when no asyncio loop is
    running, so a panel task still alive then would wake up outside its loop.
    """

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[ConfigurationPanel]:
        panel = ConfigurationPanel(client, await client.me())
        qtbot.addWidget(panel)
        panel.resize(1100, 820)
        panel.show()
        try:
            await panel.load_task
            await until(lambda: panel.live_label.text() == "Live", what="the live stream")
            yield panel
        finally:
            await panel.shutdown()

    return opened


async def as_bob(client: LocalClient, key: str, value: Any, reason: str = "bob's") -> SettingView:
    """Bob writes through the same core, based on the current version."""
    users = {user.username: user for user in await client.list_users()}
    bob = Principal.for_user(user_id=users["bob"].id, username="bob", role=Role.ADMIN)
    current = await client.get_setting(key)

    async def write(core: Any) -> SettingView:
        view: SettingView = await core.settings.write(
            bob, key, value, expected_version=current.version, reason=reason
        )
        return view

    return await client.backend_call(write)


def dialog(kind: type[W]) -> W | None:
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, kind) and widget.isVisible():
            return widget
    return None


async def wait_dialog(kind: type[W]) -> W:
    return await until(lambda: dialog(kind), what=f"a {kind.__name__}")


async def submit(form: FormDialog) -> None:
    """Press OK and wait until the form closes."""
    form.ok_button().click()
    await until(
        lambda: not form.isVisible() or (not form.busy and form.error_text()),
        what="the form to finish",
    )
    assert not form.isVisible(), form.error_text()


async def pick_file(path: Path) -> None:
    """Type the path into the file dialog, accept (`selectFile` waits for a directory scan)."""
    chooser = await wait_dialog(QFileDialog)
    name = chooser.findChild(QLineEdit, "fileNameEdit")
    assert isinstance(name, QLineEdit)
    name.setText(str(path))
    chooser.accept()


def spin(panel: ConfigurationPanel, key: str) -> QSpinBox:
    editor = panel.rows[key].editor
    assert isinstance(editor, NumberEditor)
    assert isinstance(editor.box, QSpinBox)
    return editor.box


def type_number(qtbot: QtBot, panel: ConfigurationPanel, key: str, text: str) -> None:
    """Select the number (not its unit) and type over it, as a person would."""
    box = spin(panel, key)
    box.setFocus()
    box.selectAll()
    qtbot.keyClick(box, Qt.Key.Key_Backspace)
    if text:
        qtbot.keyClicks(box, text)


def shown(panel: ConfigurationPanel, key: str) -> str:
    return spin(panel, key).text()


def history_of(panel: ConfigurationPanel) -> tuple[str, int] | None:
    """Whose history the table shows, and how many rows."""
    model = panel.history_model
    return (model.spec.key, model.rowCount()) if model.spec is not None else None


async def save_with(panel: ConfigurationPanel, reason: str) -> SaveDialog:
    panel.save_button.click()
    save = await wait_dialog(SaveDialog)
    save.reason.setText(reason)
    save.ok_button().click()
    return save


# -- editors from the declaration --------------------------------------------------------


@pytest.mark.asyncio
async def test_editors_match_the_declared_types_and_bounds(
    open_panel: OpenPanel, client: LocalClient, qtmodeltester: Any
) -> None:
    async with open_panel() as panel:
        views = {view.key: view for view in await client.list_settings()}
        assert set(panel.rows) == set(views)
        kinds = {
            "int": NumberEditor,
            "bool": BoolEditor,
            "choice": ChoiceEditor,
            "str": TextEditor,
            "secret": SecretEditor,
        }
        for key, view in views.items():
            editor = panel.rows[key].editor
            assert isinstance(editor, kinds[view.spec["type"]]), key
            if isinstance(editor, NumberEditor):
                assert editor.box.minimum() == view.spec["minimum"]
                assert editor.box.maximum() == view.spec["maximum"]
                assert editor.box.value() == view.value
                unit = view.spec["unit"]
                assert editor.box.suffix() == (f" {unit}" if unit else "")
            elif isinstance(editor, ChoiceEditor):
                items = [editor.box.itemText(i) for i in range(editor.box.count())]
                assert items == view.spec["choices"]
                assert editor.box.currentText() == view.value
            elif isinstance(editor, TextEditor):
                assert editor.line.maxLength() == view.spec["max_length"]
                assert editor.line.text() == view.value
        interval = panel.rows[INTERVAL]
        assert interval.bounds.text() == "1 to 3600 s"
        assert "Monitoring" in panel.state.categories()
        assert panel.form_stack.currentWidget() is panel.pages["Monitoring"]
        await until(lambda: history_of(panel) == (INTERVAL, 1), what="only the default")
        qtmodeltester.check(panel.tree_model)
        qtmodeltester.check(panel.history_model)


@pytest.mark.asyncio
async def test_the_tree_lists_categories_and_follows_edits(
    open_panel: OpenPanel, qtbot: QtBot, qtmodeltester: Any
) -> None:
    async with open_panel() as panel:
        model: SettingsTreeModel = panel.tree_model
        categories = [model.index(row, 0).data() for row in range(model.rowCount())]
        assert categories == ["Monitoring", "Retention", "Security", "Notifications"]
        security = model.category_index("Security")
        panel.tree.selectionModel().select(
            model.index(1, 0, security), QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        assert panel.current_key == "auth.session_hours"
        assert panel.form_stack.currentWidget() is panel.pages["Security"]
        type_number(qtbot, panel, LOCKOUT, "30")
        index = model.index_of(LOCKOUT)
        assert index.data(STATE_ROLE) == "dirty"
        assert index.siblingAtColumn(1).data() == "30 min"
        assert model.category_index("Security").data() == "Security (1 unsaved)"
        qtmodeltester.check(model)


# -- validation, save, history ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_invalid_input_is_blocked_inline(
    open_panel: OpenPanel, qtbot: QtBot, client: LocalClient
) -> None:
    async with open_panel() as panel:
        row = panel.rows[INTERVAL]
        type_number(qtbot, panel, INTERVAL, "")
        assert row.status.text() == "A value is required. This value cannot be saved."
        assert not panel.save_button.isEnabled()
        assert INTERVAL in panel.save_button.toolTip()
        type_number(qtbot, panel, INTERVAL, "0")
        assert row.status.text() == "Must be at least 1. This value cannot be saved."
        assert row.status.property("tone") == "error"
        assert not panel.save_button.isEnabled()
        type_number(qtbot, panel, INTERVAL, "99999")  # the spin box refuses digits past the maximum
        editor = row.editor
        assert isinstance(editor, NumberEditor)
        assert editor.box.value() <= 3600
        type_number(qtbot, panel, INTERVAL, "5")
        assert row.status.text() == "Modified, not saved yet."
        assert panel.save_button.isEnabled()
        assert panel.save_button.text() == "Save 1 change…"
        assert (await client.get_setting(INTERVAL)).version == 0  # nothing was sent


@pytest.mark.asyncio
async def test_save_asks_a_reason_and_writes_a_new_version(
    open_panel: OpenPanel, qtbot: QtBot, client: LocalClient
) -> None:
    async with open_panel() as panel:
        type_number(qtbot, panel, LOCKOUT, "30")
        combo = panel.rows["notify.smtp_security"].editor
        assert isinstance(combo, ChoiceEditor)
        combo.box.setCurrentText("tls")
        panel.save_button.click()
        save = await wait_dialog(SaveDialog)
        assert "auth.lockout_minutes: 15 min → 30 min" in save.summary.text()
        assert "notify.smtp_security: starttls → tls" in save.summary.text()
        save.ok_button().click()  # no reason yet
        await until(save.error_text, what="the missing reason")
        assert "Give a reason" in save.error_text()
        save.reason.setText("longer lockouts after the audit")
        await submit(save)

        view = await client.get_setting(LOCKOUT)
        assert (view.value, view.version, view.updated_by) == (30, 1, "ada")
        assert (await client.get_setting("notify.smtp_security")).value == "tls"
        assert not panel.state.dirty()
        assert panel.state.field(LOCKOUT).version == 1
        assert panel.status.text() == "Saved 2 settings."
        assert panel.rows[LOCKOUT].status.text().startswith("Version 1 · ada · ")

        panel.select(LOCKOUT)
        history: SettingHistoryModel = panel.history_model
        await until(lambda: history_of(panel) == (LOCKOUT, 2), what="the lockout's history")
        assert [history.index(0, c).data() for c in range(4)] == [
            "1",
            "30 min",
            "ada",
            "longer lockouts after the audit",
        ]
        assert history.index(1, 0).data() == "default"


@pytest.mark.asyncio
async def test_an_edit_elsewhere_updates_an_untouched_editor(
    open_panel: OpenPanel, client: LocalClient
) -> None:
    async with open_panel() as panel:
        await as_bob(client, LOCKOUT, 45)
        editor = panel.rows[LOCKOUT].editor
        assert isinstance(editor, NumberEditor)
        await until(lambda: editor.box.value() == 45, what="bob's value to show")
        assert not panel.state.dirty()
        assert "bob" in panel.rows[LOCKOUT].status.text()


# -- conflicts ---------------------------------------------------------------------------


async def _stale_edit(panel: ConfigurationPanel, qtbot: QtBot, client: LocalClient) -> None:
    """Ada types 30 while bob saves 45: her editor is marked, keeps her 30."""
    type_number(qtbot, panel, LOCKOUT, "30")
    await as_bob(client, LOCKOUT, 45, reason="bob's reason")
    row = panel.rows[LOCKOUT]
    await until(lambda: "Changed elsewhere" in row.status.text(), what="the stale mark")
    assert "bob" in row.status.text()
    assert "45 min" in row.status.text()
    assert shown(panel, LOCKOUT) == "30 min"
    assert panel.state.field(LOCKOUT).version == 0  # still based on what she loaded


@pytest.mark.asyncio
async def test_a_stale_write_shows_the_conflict_and_reload_takes_theirs(
    open_panel: OpenPanel, qtbot: QtBot, client: LocalClient
) -> None:
    async with open_panel() as panel:
        await _stale_edit(panel, qtbot, client)
        save = await save_with(panel, "mine")
        conflict = await wait_dialog(ConflictDialog)
        assert conflict.mine.text() == "30 min"
        assert conflict.theirs.text().startswith("45 min — version 1, by bob at ")
        assert conflict.base.text() == "15 min — version 0"
        assert "bob" in conflict.headline.text()
        conflict.reload_button.click()
        await until(lambda: not save.isVisible(), what="the save to finish")

        view = await client.get_setting(LOCKOUT)
        assert (view.value, view.version, view.updated_by) == (45, 1, "bob")
        assert not panel.state.field(LOCKOUT).dirty
        assert shown(panel, LOCKOUT) == "45 min"


@pytest.mark.asyncio
async def test_review_and_overwrite_writes_over_theirs(
    open_panel: OpenPanel, qtbot: QtBot, client: LocalClient
) -> None:
    async with open_panel() as panel:
        await _stale_edit(panel, qtbot, client)
        save = await save_with(panel, "we agreed on 30")
        conflict = await wait_dialog(ConflictDialog)
        conflict.review_button.click()
        assert conflict.stack.currentIndex() == 1
        assert "Overwrite bob's value (45 min, version 1) with yours (30 min)?" in (
            conflict.review_text.text()
        )
        assert (await client.get_setting(LOCKOUT)).value == 45  # nothing written before confirming
        conflict.overwrite_button.click()
        await until(lambda: not save.isVisible(), what="the save to finish")

        view = await client.get_setting(LOCKOUT)
        assert (view.value, view.version, view.updated_by) == (30, 2, "ada")
        history = await client.setting_history(LOCKOUT)
        assert [(v.version, v.actor, v.reason) for v in history][:2] == [
            (2, "ada", "we agreed on 30"),
            (1, "bob", "bob's reason"),
        ]
        assert not panel.state.dirty()


@pytest.mark.asyncio
async def test_deciding_later_keeps_what_was_typed(
    open_panel: OpenPanel, qtbot: QtBot, client: LocalClient
) -> None:
    async with open_panel() as panel:
        await _stale_edit(panel, qtbot, client)
        save = await save_with(panel, "mine")
        conflict = await wait_dialog(ConflictDialog)
        conflict.later_button.click()
        await until(lambda: not save.isVisible(), what="the save to finish")
        field = panel.state.field(LOCKOUT)
        assert field.draft == 30
        assert field.elsewhere is not None
        assert shown(panel, LOCKOUT) == "30 min"
        assert (await client.get_setting(LOCKOUT)).value == 45


# -- rollback ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rollback_writes_an_old_value_as_a_new_version(
    open_panel: OpenPanel, client: LocalClient
) -> None:
    await client.write_setting(LOCKOUT, 20, expected_version=0, reason="first")
    await client.write_setting(LOCKOUT, 30, expected_version=1, reason="second")
    async with open_panel() as panel:
        panel.select(LOCKOUT)
        history = panel.history_model
        await until(lambda: history_of(panel) == (LOCKOUT, 3), what="2 versions, the default")
        assert not panel.rollback_button.isEnabled()
        assert panel.rollback_button.toolTip() == "Select a version in the history first."
        panel.history.selectRow(history.row_of(2))
        assert panel.rollback_button.toolTip() == "This is the current version."
        panel.history.selectRow(history.row_of(1))
        assert panel.difference.text() == (
            "Version 1 vs current (version 2): Current value differs: 20 min → 30 min (+10 min)."
        )
        assert panel.rollback_button.isEnabled()
        panel.rollback_button.click()
        rollback = await wait_dialog(RollbackDialog)
        rollback.reason.setText("30 was too long")
        await submit(rollback)

        view = await client.get_setting(LOCKOUT)
        assert (view.value, view.version) == (20, 3)
        assert (await client.setting_history(LOCKOUT))[0].reason == "30 was too long"
        assert shown(panel, LOCKOUT) == "20 min"
        await until(lambda: history_of(panel) == (LOCKOUT, 4), what="the new version")


# -- import and export -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_import_previews_the_changes_then_applies_them(
    open_panel: OpenPanel, client: LocalClient, tmp_path: Path, qtmodeltester: Any
) -> None:
    async with open_panel() as panel:
        document = await client.export_settings()
        document["settings"][LOCKOUT] = 99
        document["settings"]["notify.smtp_security"] = "tls"
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(document), encoding="utf-8")

        panel.import_button.click()
        await pick_file(path)
        importing = await wait_dialog(ImportDialog)
        await until(lambda: importing.previewed, what="the preview")
        rows = [
            [importing.changes.index(r, c).data() for c in range(3)]
            for r in range(importing.changes.rowCount())
        ]
        assert rows == [[LOCKOUT, "15 min", "99 min"], ["notify.smtp_security", "starttls", "tls"]]
        assert (await client.get_setting(LOCKOUT)).version == 0  # the preview wrote nothing
        qtmodeltester.check(importing.changes)
        assert importing.ok_button().isEnabled()
        await submit(importing)

        assert (await client.get_setting(LOCKOUT)).value == 99
        assert (await client.get_setting("notify.smtp_security")).value == "tls"
        await until(lambda: shown(panel, LOCKOUT) == "99 min", what="the new value")
        assert panel.status.text() == "Imported 2 changes from settings.json."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "The file settings.json is not valid JSON (line 1, column 2"),
        (
            json.dumps({"format": "quarterdeck.settings", "version": 1, "settings": {LOCKOUT: 0}}),
            "Nothing was imported: auth.lockout_minutes: must be at least 1.",
        ),
        (json.dumps({"hello": 1}), "Not a Quarterdeck settings export"),
    ],
    ids=["not-json", "out-of-range", "not-an-export"],
)
@pytest.mark.asyncio
async def test_a_bad_import_file_shows_why_and_changes_nothing(
    open_panel: OpenPanel, client: LocalClient, tmp_path: Path, content: str, message: str
) -> None:
    async with open_panel() as panel:
        path = tmp_path / "settings.json"
        path.write_text(content, encoding="utf-8")
        panel.import_button.click()
        await pick_file(path)
        importing = await wait_dialog(ImportDialog)
        await until(importing.error_text, what="the error")
        assert message in importing.error_text()
        assert not importing.ok_button().isEnabled()
        importing.reject()
        assert [view.version for view in await client.list_settings()] == [0] * len(panel.rows)


@pytest.mark.asyncio
async def test_export_writes_the_settings_and_secrets_only_when_asked(
    open_panel: OpenPanel, client: LocalClient, tmp_path: Path
) -> None:
    await client.write_setting(PASSWORD_KEY, "hunter2", expected_version=0, reason="relay")
    async with open_panel() as panel:
        for include, name in ((False, "plain.json"), (True, "secret.json")):
            panel.export_button.click()
            export = await wait_dialog(ExportDialog)
            assert export.include_secrets.isEnabled()
            export.include_secrets.setChecked(include)
            export.ok_button().click()
            await pick_file(tmp_path / name)
            await until(lambda d=export: not d.isVisible(), what="the export")
            saved = json.loads((tmp_path / name).read_text(encoding="utf-8"))
            assert saved["settings"][LOCKOUT] == 15
            assert (PASSWORD_KEY in saved["settings"]) is include
        assert panel.status.text().startswith("Exported ")


# -- roles and secrets -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_viewer_sees_every_control_disabled_with_the_reason(
    open_panel: OpenPanel, client: LocalClient
) -> None:
    await client.write_setting(PASSWORD_KEY, "hunter2", expected_version=0, reason="relay")
    await client.sign_in("vera", PASSWORD)
    async with open_panel() as panel:
        assert panel.role_note.text() == f"Read only. {NOT_WRITER}"
        for key, row in panel.rows.items():
            for widget in row.editor.inputs():
                assert not widget.isEnabled(), key
                assert widget.toolTip() == NOT_WRITER, key
        for button in (panel.save_button, panel.import_button, panel.rollback_button):
            assert not button.isEnabled()
        assert panel.save_button.toolTip() == NOT_WRITER
        assert panel.import_button.toolTip() == NOT_WRITER
        panel.select(LOCKOUT)
        await until(lambda: history_of(panel) == (LOCKOUT, 1), what="the history")
        panel.history.selectRow(0)
        assert panel.rollback_button.toolTip() == NOT_WRITER
        secret = panel.rows[PASSWORD_KEY].editor
        assert isinstance(secret, SecretEditor)
        assert secret.line.text() == ""
        assert secret.line.placeholderText() == f"{MASK} (set)"
        assert not secret.show_button.isEnabled()
        assert "settings:secrets" in secret.show_button.toolTip()
        panel.export_button.click()
        export = await wait_dialog(ExportDialog)
        assert not export.include_secrets.isEnabled()
        assert export.include_secrets.toolTip() == NO_SECRETS
        export.reject()


@pytest.mark.asyncio
async def test_an_operator_writes_settings_but_not_secrets(
    open_panel: OpenPanel, client: LocalClient
) -> None:
    await client.sign_in("otto", PASSWORD)
    async with open_panel() as panel:
        assert panel.import_button.isEnabled()
        assert panel.rows[LOCKOUT].editor.inputs()[0].isEnabled()
        secret = panel.rows[PASSWORD_KEY].editor
        assert isinstance(secret, SecretEditor)
        assert not secret.replace_button.isEnabled()
        assert secret.replace_button.toolTip() == NO_SECRETS
        assert secret.line.placeholderText() == "(not set)"
        history_value = panel.tree_model.index_of(PASSWORD_KEY).siblingAtColumn(1).data()
        assert history_value == "(not set)"


@pytest.mark.asyncio
async def test_a_secret_is_masked_shown_on_request_and_replaced_without_echo(
    open_panel: OpenPanel, qtbot: QtBot, client: LocalClient
) -> None:
    await client.write_setting(PASSWORD_KEY, "hunter2", expected_version=0, reason="relay")
    async with open_panel() as panel:
        secret = panel.rows[PASSWORD_KEY].editor
        assert isinstance(secret, SecretEditor)
        assert secret.line.text() == ""
        assert secret.line.isReadOnly()
        assert secret.line.placeholderText() == f"{MASK} (set)"
        assert panel.tree_model.index_of(PASSWORD_KEY).siblingAtColumn(1).data() == MASK
        secret.show_button.click()
        assert secret.line.text() == "hunter2"
        assert secret.line.isReadOnly()
        secret.show_button.click()
        assert secret.line.text() == ""
        assert not panel.state.dirty()  # showing is not editing

        secret.replace_button.click()
        assert not secret.line.isReadOnly()
        assert secret.line.text() == ""
        assert secret.line.echoMode() == QLineEdit.EchoMode.Password
        qtbot.keyClicks(secret.line, "correct-horse")
        panel.save_button.click()
        save = await wait_dialog(SaveDialog)
        assert "hunter2" not in save.summary.text()
        assert "correct-horse" not in save.summary.text()
        assert "notify.smtp_password: a secret value (not shown) → a new secret value" in (
            save.summary.text()
        )
        save.reason.setText("rotated")
        await submit(save)
        exported = await client.export_settings(include_secrets=True)
        assert exported["settings"][PASSWORD_KEY] == "correct-horse"
        assert not secret.replacing
        assert secret.line.text() == ""
        history = panel.history_model
        panel.select(PASSWORD_KEY)
        await until(lambda: history_of(panel) == (PASSWORD_KEY, 3), what="the secret's history")
        assert {history.index(r, 1).data() for r in range(2)} == {MASK}


@pytest.mark.asyncio
async def test_keep_current_withdraws_a_secret_replacement(open_panel: OpenPanel) -> None:
    async with open_panel() as panel:
        secret = panel.rows[PASSWORD_KEY].editor
        assert isinstance(secret, SecretEditor)
        secret.replace_button.click()
        assert panel.state.field(PASSWORD_KEY).dirty
        secret.replace_button.click()  # "Keep current"
        assert not panel.state.dirty()
        assert secret.line.isReadOnly()


def test_bool_editor_reports_toggles(app: QApplication) -> None:
    """No setting is a boolean yet; the editor is still built from the type alone."""
    from console.models.settingspec import FieldSpec

    spec = FieldSpec(key="x.enabled", type="bool", description="", category="X")
    editor = BoolEditor(spec)
    seen: list[tuple[object, object]] = []
    editor.edited.connect(lambda value, problem: seen.append((value, problem)))
    editor.set_value(False)
    assert seen == []
    box = editor.inputs()[0]
    assert isinstance(box, QCheckBox)
    box.click()
    assert seen == [(True, None)]
    editor.deleteLater()


def test_choice_editor_lists_the_choices(app: QApplication) -> None:
    from console.models.settingspec import FieldSpec

    spec = FieldSpec(key="x.mode", type="choice", description="", category="X", choices=("a", "b"))
    editor = ChoiceEditor(spec)
    assert isinstance(editor.box, QComboBox)
    assert [editor.box.itemText(i) for i in range(editor.box.count())] == ["a", "b"]
    editor.deleteLater()


def test_a_setting_that_needs_a_restart_says_so(app: QApplication) -> None:
    """No setting needs a restart today; the badge and the save summary come from the data."""
    view = SettingView(
        key="server.workers",
        value=4,
        version=2,
        masked=False,
        is_set=True,
        updated_at=None,
        updated_by="ada",
        spec={
            "type": "int",
            "description": "Worker processes.",
            "category": "Server",
            "minimum": 1,
            "maximum": 64,
            "restart_required": True,
        },
    )
    state = SettingsState()
    state.load([view])
    row = SettingRow(state, "server.workers", denied=None)
    assert not row.restart_badge.isHidden()
    assert row.restart_badge.text() == "Restart required"
    state.edit("server.workers", 8)
    dialog = SaveDialog(state.dirty(), lambda _reason: asyncio.sleep(0))
    assert "server.workers: 4 → 8 (takes effect after a restart)" in dialog.summary.text()
    for widget in (dialog, row):
        widget.deleteLater()
