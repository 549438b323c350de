"""Settings: versioned writes, conflicts that change nothing, history, rollback, import."""

from __future__ import annotations

import pytest

from console.client.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.conftest import PASSWORD
from tests.contract.conftest import Harness

pytestmark = pytest.mark.asyncio

KEY = "collector.interval_seconds"


async def test_list_write_conflict_history_rollback(harness: Harness) -> None:
    client = harness.client
    listed = {setting.key: setting for setting in await client.list_settings()}
    assert listed[KEY].value == 1
    assert listed[KEY].version == 0
    assert listed[KEY].spec["minimum"] == 1

    first = await client.write_setting(KEY, 5, expected_version=0, reason="slower")
    assert (first.value, first.version, first.updated_by) == (5, 1, "ada")
    second = await client.write_setting(KEY, 10, expected_version=1, reason="slower still")
    assert second.version == 2

    with pytest.raises(Conflict) as stale:
        await client.write_setting(KEY, 99, expected_version=1, reason="based on old state")
    assert stale.value.details["current_version"] == 2
    assert await client.get_setting(KEY) == second  # nothing was written

    with pytest.raises(InvalidInput):
        await client.write_setting(KEY, 0, expected_version=2)  # below the minimum
    with pytest.raises(NotFound):
        await client.get_setting("no.such.setting")

    history = await client.setting_history(KEY)
    assert [(version.version, version.value, version.reason) for version in history] == [
        (2, 10, "slower still"),
        (1, 5, "slower"),
    ]
    rolled = await client.rollback_setting(KEY, version=1, reason="back", expected_version=2)
    assert (rolled.value, rolled.version) == (5, 3)
    with pytest.raises(Conflict):
        await client.rollback_setting(KEY, version=1, expected_version=2)


async def test_export_and_import_dry_run(harness: Harness) -> None:
    client = harness.client
    await client.write_setting("notify.smtp_password", "hunter22", expected_version=0)
    exported = await client.export_settings()
    assert exported["settings"][KEY] == 1
    assert "notify.smtp_password" not in exported["settings"]
    with_secrets = await client.export_settings(include_secrets=True)
    assert with_secrets["settings"]["notify.smtp_password"] == "hunter22"

    document = {**exported, "settings": {**exported["settings"], KEY: 7}}
    preview = await client.import_settings(document, dry_run=True)
    assert [(change.key, change.old, change.new) for change in preview] == [(KEY, 1, 7)]
    assert (await client.get_setting(KEY)).value == 1  # a preview writes nothing

    with pytest.raises(InvalidInput):
        await client.import_settings({**document, "settings": {KEY: "often"}})
    applied = await client.import_settings(document, reason="from staging")
    assert applied == preview
    assert (await client.get_setting(KEY)).value == 7


async def test_viewer_sees_secrets_masked_and_cannot_write(harness: Harness) -> None:
    client = harness.client
    await client.write_setting("notify.smtp_password", "hunter22", expected_version=0)
    await client.create_user(username="vera", password=PASSWORD, role="viewer")
    await client.sign_out()
    await client.sign_in("vera", PASSWORD)
    secret = await client.get_setting("notify.smtp_password")
    assert secret.masked
    assert secret.value != "hunter22"
    with pytest.raises(Forbidden):
        await client.write_setting(KEY, 3, expected_version=0)
    with pytest.raises(Forbidden):
        await client.export_settings(include_secrets=True)
