"""The Audit panel on a real embedded backend: paging, filters, export, verification.

A few hundred entries are made through the client (settings writes by two
users), the panel is driven as a person would (typing in the filters,
scrolling, clicking), and what it shows is compared with what the log
holds. Async tests on the qasync loop; `until` polls instead of blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from PySide6.QtCore import QDateTime
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QProgressDialog, QPushButton
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot
from sqlalchemy import text

from backend.config import Settings
from backend.core import Core
from console.client.local import LocalClient
from console.client.types import AuditEntryView, AuditQuery, MeView
from console.models.audit import PAGE_SIZE, AuditTableModel
from console.panels.audit import CUSTOM, PRESETS, AuditPanel
from tests.conftest import TEST_SECRET
from tests.console.conftest import find_window, until

PASSWORD = "correct horse battery"
KEY = "notify.smtp_host"
ADA_WRITES = 280
OTTO_WRITES = 30

pytestmark = pytest.mark.asyncio


@dataclass
class Log:
    client: LocalClient
    me: MeView
    boundary: float
    """A time after ada's writes and before otto's (a second apart)."""


async def everything(client: LocalClient, query: AuditQuery) -> list[AuditEntryView]:
    """The whole matching log straight from the client: what the panel should show."""
    entries: list[AuditEntryView] = []
    before: int | None = None
    while True:
        page = await client.list_audit(query, before_id=before, limit=1000)
        entries.extend(page.entries)
        if page.next_cursor is None:
            return entries
        before = page.next_cursor


async def write_settings(client: LocalClient, count: int, prefix: str) -> None:
    version = (await client.get_setting(KEY)).version
    for n in range(count):
        view = await client.write_setting(
            KEY, f"{prefix}-{n}.example", expected_version=version, reason=f"{prefix} step {n}"
        )
        version = view.version


async def seed(settings: Settings) -> float:
    """ada (admin) writes ADA_WRITES settings; a second later otto (operator) OTTO_WRITES.

    Returns a time between the two batches, on a whole second.
    """
    client = await LocalClient.open(settings)
    try:
        await client.create_first_admin(username="ada", password=PASSWORD)
        await client.create_user(username="otto", password=PASSWORD, role="operator")
        await write_settings(client, ADA_WRITES, "ada")
        boundary = float(int(time.time()) + 1)
        await asyncio.sleep(boundary - time.time() + 0.05)  # otto starts in the next second
        await client.sign_out()
        await client.sign_in("otto", PASSWORD)
        await write_settings(client, OTTO_WRITES, "otto")
        await client.sign_out()
    finally:
        await client.close()
    return boundary


def backend_settings(data: Path) -> Settings:
    """As `embedded_settings`: an embedded backend in `data`, no background jobs."""
    return Settings(
        data_dir=data,
        secret_key=TEST_SECRET,
        run_jobs=False,
        collect_local=False,
        live_events=False,
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> tuple[Path, float]:
    """The seeded log, made once for this module (a few seconds); each test gets a copy."""
    data = tmp_path_factory.mktemp("audit-seed")
    shutil.copy(sqlite_template, data / "quarterdeck.db")
    boundary = asyncio.run(seed(backend_settings(data)))
    return data, boundary


@pytest_asyncio.fixture
async def log(app: QApplication, tmp_path: Path, seeded: tuple[Path, float]) -> AsyncIterator[Log]:
    """A copy of the seeded log, signed in as ada."""
    template, boundary = seeded
    data = tmp_path / "data"
    shutil.copytree(template, data)
    client = await LocalClient.open(backend_settings(data))
    try:
        me = await client.sign_in("ada", PASSWORD)
        yield Log(client, me, boundary)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def opened(log: Log, qtbot: QtBot, me: MeView | None = None) -> AsyncIterator[AuditPanel]:
    """The panel, shown, and shut down before the test ends.

    Not a fixture: pytest-qt processes Qt events between a fixture's setup
    and the test, where no asyncio loop runs, and a panel's task resumed
    there would find none.
    """
    widget = AuditPanel(log.client, me or log.me, None)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    try:
        yield widget
    finally:
        await widget.shutdown()


def leftovers(folder: Path) -> list[Path]:
    """Partial files an export left behind (there should be none)."""
    return list(folder.glob(".*partial"))


def shown(panel: AuditPanel) -> list[int]:
    """Ids of the rows in the table, top to bottom."""
    return [panel.model.entry(row).id for row in range(panel.model.rowCount())]


async def settled(panel: AuditPanel) -> None:
    await until(
        lambda: not panel.model.loading and not panel._debounce.isActive(),
        what="the table to settle",
    )


async def all_loaded(panel: AuditPanel) -> list[int]:
    """Scroll to the bottom until the oldest matching entry is in."""
    while True:
        await settled(panel)
        if panel.model.exhausted:
            return shown(panel)
        panel.table.scrollToBottom()
        await until(lambda: panel.model.loading or panel.model.exhausted, what="the next page")


async def test_first_page_then_more_when_scrolled(log: Log, qtbot: QtBot) -> None:
    async with opened(log, qtbot) as panel:
        expected = [entry.id for entry in await everything(log.client, AuditQuery())]
        assert len(expected) > 2 * PAGE_SIZE - 100  # enough for two pages, not three
        await until(lambda: panel.model.rowCount() == PAGE_SIZE, what="the first page")
        await settled(panel)
        assert shown(panel) == expected[:PAGE_SIZE]
        assert not panel.model.exhausted
        assert "Showing the newest 200 matching entries" in panel.status.text()
        first = panel.model.entry(0)
        assert panel.model.index(0, 1).data() == first.actor == "ada"  # her sign-in, the newest
        assert panel.model.index(0, 2).data() == "auth.login"

        panel.table.scrollToBottom()  # the view asks for the next page itself
        await until(lambda: panel.model.rowCount() > PAGE_SIZE, what="the second page")
        assert await all_loaded(panel) == expected
        assert panel.status.text() == f"All {len(expected)} matching entries shown."
        assert not panel.model.canFetchMore()


async def test_filters_narrow_the_rows(log: Log, qtbot: QtBot) -> None:
    async with opened(log, qtbot) as panel:
        await until(panel.model.rowCount, what="the first page")

        panel.actor.setEditText("otto")
        await settled(panel)
        otto = await everything(log.client, AuditQuery(actor="otto"))
        assert len(otto) == OTTO_WRITES + 2  # his writes, his sign-in and sign-out
        assert shown(panel) == [entry.id for entry in otto]
        assert {panel.model.index(row, 1).data() for row in range(panel.model.rowCount())} == {
            "otto"
        }

        panel.action.setEditText("settings.write")
        await settled(panel)
        assert panel.model.rowCount() == OTTO_WRITES

        panel.actor.setEditText("")
        panel.text.setText("ADA-25")  # case-insensitive, in the details' old and new values
        await settled(panel)
        matching = await everything(log.client, AuditQuery(action="settings.write", text="ada-25"))
        assert 11 <= len(matching) < PAGE_SIZE  # ada-25, ada-250…259 and the writes after them
        assert shown(panel) == [entry.id for entry in matching]
        assert all("ada-25" in panel.model.index(row, 6).data() for row in range(len(matching)))

        panel.text.setText("")
        panel.action.setEditText("")
        panel.preset.setCurrentIndex(CUSTOM)
        panel.since.setDateTime(QDateTime.fromSecsSinceEpoch(int(log.boundary)))
        panel.until.setDateTime(QDateTime.currentDateTime().addSecs(60))
        await settled(panel)
        after = await everything(log.client, AuditQuery(since=log.boundary))
        assert [entry.actor for entry in after][-1] == "ada"  # ada's sign-out, right before otto's
        assert shown(panel) == [entry.id for entry in after]
        assert all(entry.ts >= log.boundary for entry in panel.model.entries())

        # A range that ends before it starts: said next to the filters, which stay as typed.
        panel.until.setDateTime(QDateTime.fromSecsSinceEpoch(int(log.boundary) - 60))
        await until(panel.filter_error.isVisible, what="the range error")
        assert "ends before it starts" in panel.filter_error.text()
        assert panel.until.dateTime().toSecsSinceEpoch() == int(log.boundary) - 60
        assert panel.model.rowCount() == 0

        panel.preset.setCurrentIndex(PRESETS.index(("Last hour", 3600.0)))
        assert not panel.since.isVisible()
        assert await all_loaded(panel) == [
            entry.id for entry in await everything(log.client, AuditQuery())
        ]

        panel.actor.setEditText("nobody")
        await settled(panel)
        assert panel.model.rowCount() == 0
        assert panel.status.text() == "No entries match these filters."


async def test_a_new_filter_cancels_the_load_in_flight(log: Log, qtbot: QtBot) -> None:
    async with opened(log, qtbot) as panel:
        panel.actor.setEditText("otto")
        panel.apply_filters()  # no wait for the debounce: the first page may still be on its way
        panel.text.setText("otto-1")
        panel.apply_filters()
        await settled(panel)
        expected = await everything(log.client, AuditQuery(actor="otto", text="otto-1"))
        assert expected
        assert shown(panel) == [entry.id for entry in expected]


async def test_the_detail_pane_and_tooltip_show_everything(log: Log, qtbot: QtBot) -> None:
    async with opened(log, qtbot) as panel:
        panel.action.setEditText("settings.write")
        await settled(panel)
        entry = panel.model.entry(0)
        panel.table.selectRow(0)
        detail = panel.detail.toPlainText()
        assert f"Entry #{entry.id}" in detail
        assert json.dumps(entry.details, indent=2, sort_keys=True) in detail
        tooltip = panel.model.index(0, 6).data(3)  # ToolTipRole
        assert json.loads(tooltip) == entry.details


async def test_new_entries_are_offered_and_shown_on_click(log: Log, qtbot: QtBot) -> None:
    async with opened(log, qtbot) as panel:
        await until(panel.model.rowCount, what="the first page")
        panel.actor.setEditText("ada")
        await settled(panel)
        top = panel.model.newest_id()
        await write_settings(log.client, 3, "later")
        await until(panel.new_bar.isVisible, what="the new entries bar")
        assert panel.new_label.text() == "3 new entries matching the filters."
        assert panel.model.newest_id() == top  # nothing moved under the reader
        panel.show_new_button.click()
        await settled(panel)
        assert not panel.new_bar.isVisible()
        assert panel.model.newest_id() > top
        assert panel.model.index(0, 6).data().count("later-2") == 1


async def test_csv_export_writes_exactly_the_filtered_rows(
    log: Log, qtbot: QtBot, tmp_path: Path
) -> None:
    async with opened(log, qtbot) as panel:
        panel.text.setText("otto")
        await settled(panel)
        expected = await everything(log.client, AuditQuery(text="otto"))
        assert OTTO_WRITES < len(expected) < PAGE_SIZE
        assert len(expected) < panel.model.rowCount() or panel.model.exhausted

        target = tmp_path / "otto.csv"
        panel.audit_actions["export"].trigger()
        dialog = await until(lambda: find_window(QFileDialog), what="the save dialog")
        name = dialog.findChild(QLineEdit, "fileNameEdit")  # typed, as a person would
        name.setText(str(target))
        dialog.accept()
        await until(lambda: "Exported" in panel.status.text(), what="the export to end")
        assert panel.status.text() == f"Exported {len(expected)} entries to {target}."

        with target.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        assert list(rows[0]) == [
            "id",
            "time_utc",
            "actor",
            "actor_id",
            "action",
            "target",
            "source",
            "correlation_id",
            "details",
        ]
        assert [int(row["id"]) for row in rows] == [entry.id for entry in expected]
        assert [json.loads(row["details"]) for row in rows] == [entry.details for entry in expected]
        assert rows[0]["time_utc"].endswith("Z")
        assert not leftovers(tmp_path)


async def test_an_export_of_many_pages_can_be_cancelled(
    log: Log, qtbot: QtBot, tmp_path: Path
) -> None:
    async with opened(log, qtbot) as panel:
        target = tmp_path / "all.csv"
        written = await panel.export_to(target)
        assert written == len(await everything(log.client, AuditQuery()))
        with target.open(newline="", encoding="utf-8") as file:
            assert sum(1 for _ in file) == (written or 0) + 1

        partial = tmp_path / "cancelled.csv"
        panel.export_page_size = 1  # hundreds of round trips: time to press Cancel
        export = asyncio.ensure_future(panel.export_to(partial))
        progress = await until(
            lambda: (
                (dialog := panel.findChild(QProgressDialog, "ExportProgress"))
                and dialog.value() > 0
                and dialog
            ),
            what="the export's progress",
        )
        assert "Exporting the audit log…" in progress.labelText()
        cancel = progress.findChild(QPushButton)
        assert cancel.text() == "Cancel"
        cancel.click()
        assert await export is None
        assert panel.status.text() == "Export cancelled; no file written."
        assert not partial.exists()
        assert not leftovers(tmp_path)
        assert panel.audit_actions["export"].isEnabled()


async def test_verify_says_ok_then_names_the_tampered_entry(log: Log, qtbot: QtBot) -> None:
    async with opened(log, qtbot) as panel:
        count = len(await everything(log.client, AuditQuery()))
        panel.audit_actions["verify"].trigger()
        await until(lambda: panel.last_verification, what="the verification")
        assert panel.verify_result.isVisible()
        assert panel.verify_result.text().startswith(f"✔ The chain is intact: all {count} entries")

        victim = (await everything(log.client, AuditQuery(actor="otto")))[5]

        async def tamper(core: Core) -> None:
            async with core.db.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE audit_log SET target = 'mallory' WHERE id = :id"),
                    {"id": victim.id},
                )

        await log.client.backend_call(tamper)
        panel.last_verification = None
        panel.audit_actions["verify"].trigger()
        await until(lambda: panel.last_verification, what="the second verification")
        message = panel.verify_result.text()
        assert message.startswith(f"✘ The chain is broken at entry #{victim.id}: ")
        assert "edited" in message
        assert panel.verify_result.property("state") == "broken"


async def test_a_viewer_is_told_plainly(log: Log, qtbot: QtBot) -> None:
    await log.client.create_user(username="vera", password=PASSWORD, role="viewer")
    await log.client.sign_out()
    me = await log.client.sign_in("vera", PASSWORD)
    async with opened(log, qtbot, me) as panel:
        await until(lambda: panel.pages.currentWidget() is panel.forbidden, what="the message")
        assert "cannot read the audit log" in panel.forbidden.message()
        assert not panel.audit_actions["export"].isEnabled()
        assert not panel.audit_actions["verify"].isEnabled()
        assert "viewers have no access" in (panel.audit_actions.reason("verify") or "")
        assert not panel.model.canFetchMore()


async def test_the_model_passes_qtmodeltester(log: Log, qtmodeltester: ModelTester) -> None:
    model = AuditTableModel(log.client, page_size=50)
    model.set_query(AuditQuery())
    await until(lambda: model.rowCount() == 50, what="the first page")
    await until(lambda: not model.loading)
    qtmodeltester.check(model)
    model.fetchMore()  # the tester keeps watching the rows inserted
    await until(lambda: model.rowCount() >= 100 and not model.loading, what="the second page")
    model.set_query(AuditQuery(actor="otto"))
    await until(lambda: model.rowCount() and not model.loading)
    qtmodeltester.check(model)
    await model.aclose()
