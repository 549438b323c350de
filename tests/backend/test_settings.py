"""Settings: versioned writes, conflicts, history, rollback, secrets, export and import."""

from __future__ import annotations

import asyncio
import copy
from contextlib import aclosing
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core import Core
from backend.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, QuarterdeckError
from backend.domain.events import Event
from backend.domain.settings import SETTINGS, SettingSpec, SettingView
from backend.services.settings import RECENT_TTL, SettingsService
from backend.storage import settings as settings_store
from backend.storage.models import SettingVersion
from tests.backend.conftest import Backend, Team

pytestmark = pytest.mark.asyncio

KEY = "hosts.down_after_missed"  # int, 1..100, default 3
SECRET = "notify.smtp_password"
PLAINTEXT = "hunter2-relay-password"

Snapshot = tuple[list[SettingView], int, list[int]]


async def snapshot(core: Core, team: Team) -> Snapshot:
    """Everything a failed call must leave alone: values, stored versions, audit entries."""
    views = await core.settings.list(team.admin)
    async with core.db.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT count(*) FROM setting_versions"))).scalar_one()
    audit = [entry.id for entry in (await core.audit.list(team.admin, limit=1000)).entries]
    return views, int(stored), audit


async def audit_actions(core: Core, team: Team) -> list[str]:
    return [entry.action for entry in (await core.audit.list(team.admin, limit=1000)).entries]


async def settings_events(core: Core, since: str | None, action: Any) -> list[dict[str, Any]]:
    """Run `action` and return the `settings` events published by it."""
    assert since is not None
    await action()
    marker = await core.bus.bus.publish("settings", {"marker": True})
    seen: list[dict[str, Any]] = []
    async with aclosing(core.bus.bus.subscribe({"settings"}, since)) as sub:
        async with asyncio.timeout(5):
            async for message in sub:
                assert isinstance(message, Event)
                if message.id == marker:
                    return seen
                seen.append(message.data)
    raise AssertionError("the marker event never arrived")


# -- reading ---------------------------------------------------------------------


async def test_every_declared_setting_is_listed_with_its_default(core: Core, team: Team) -> None:
    views = await core.settings.list(team.viewer)
    assert [view.key for view in views] == [spec.key for spec in SETTINGS]
    by_key = {view.key: view for view in views}
    assert by_key[KEY].value == 3
    assert by_key[KEY].version == 0
    assert by_key[KEY].updated_by is None
    assert by_key[KEY].spec["minimum"] == 1
    assert by_key["notify.smtp_security"].spec["choices"] == ["none", "starttls", "tls"]
    assert by_key[SECRET].is_set is False
    assert by_key[SECRET].spec["secret"] is True


async def test_unknown_key_is_not_found_everywhere(core: Core, team: Team) -> None:
    before = await snapshot(core, team)
    with pytest.raises(NotFound):
        await core.settings.get(team.admin, "no.such.key")
    with pytest.raises(NotFound):
        await core.settings.history(team.admin, "no.such.key")
    with pytest.raises(NotFound):
        await core.settings.write(team.admin, "no.such.key", 1, expected_version=0)
    with pytest.raises(NotFound):
        await core.settings.rollback(team.admin, "no.such.key", version=0)
    with pytest.raises(NotFound):
        await core.settings.values(KEY, "no.such.key")
    assert await snapshot(core, team) == before


# -- writing ---------------------------------------------------------------------


async def test_write_stores_a_new_version_with_actor_and_reason(core: Core, team: Team) -> None:
    first = await core.settings.write(
        team.operator, KEY, 5, expected_version=0, reason="flaky network"
    )
    assert (first.value, first.version, first.updated_by) == (5, 1, "otto")
    second = await core.settings.write(team.admin, KEY, 7, expected_version=1)
    assert (second.value, second.version) == (7, 2)

    current = await core.settings.get(team.viewer, KEY)
    assert (current.value, current.version, current.updated_by) == (7, 2, "ada")
    assert await core.settings.value(KEY) == 7
    history = await core.settings.history(team.viewer, KEY)
    assert [(v.version, v.value, v.actor, v.reason) for v in history] == [
        (2, 7, "ada", ""),
        (1, 5, "otto", "flaky network"),
    ]
    entries = (await core.audit.list(team.admin, action="settings.write")).entries
    assert [(e.actor, e.target, e.details["old"], e.details["new"]) for e in entries] == [
        ("ada", KEY, 5, 7),
        ("otto", KEY, 3, 5),
    ]


async def test_write_publishes_an_event_after_commit(core: Core, team: Team) -> None:
    since = await core.bus.bus.last_id()

    async def write() -> None:
        await core.settings.write(team.admin, KEY, 5, expected_version=0)
        with pytest.raises(Conflict):
            await core.settings.write(team.admin, KEY, 6, expected_version=0)

    events = await settings_events(core, since, write)
    assert events == [{"key": KEY, "version": 1, "actor": "ada"}]


async def test_stale_write_is_a_conflict_and_writes_nothing(core: Core, team: Team) -> None:
    await core.settings.write(team.admin, KEY, 5, expected_version=0)
    before = await snapshot(core, team)
    for stale in (0, 2, -1):
        with pytest.raises(Conflict) as caught:
            await core.settings.write(team.operator, KEY, 9, expected_version=stale)
        assert caught.value.details["key"] == KEY
    assert await snapshot(core, team) == before
    assert (await core.settings.get(team.admin, KEY)).value == 5


async def test_concurrent_writers_one_wins_one_conflicts(core: Core, team: Team) -> None:
    results = await asyncio.gather(
        core.settings.write(team.admin, KEY, 10, expected_version=0, reason="first"),
        core.settings.write(team.operator, KEY, 20, expected_version=0, reason="second"),
        return_exceptions=True,
    )
    winners = [result for result in results if isinstance(result, SettingView)]
    losers = [result for result in results if isinstance(result, BaseException)]
    assert len(winners) == 1, results
    assert [type(loser) for loser in losers] == [Conflict], results
    history = await core.settings.history(team.admin, KEY)
    assert [(v.version, v.value) for v in history] == [(1, winners[0].value)]
    assert (await audit_actions(core, team)).count("settings.write") == 1
    assert (await core.audit.verify(team.admin)).ok


async def test_two_cores_racing_on_one_database_one_wins(
    backend: Backend, core: Core, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes' worth of engines: only the database can decide, not an in-process lock.

    Both writers are held until each has read the current version, so both
    really try to store version 1.
    """
    real_latest = settings_store.latest
    barrier = asyncio.Barrier(2)
    readers = 0

    async def latest_then_wait(session: AsyncSession, key: str) -> SettingVersion | None:
        nonlocal readers
        row = await real_latest(session, key)
        readers += 1
        if readers <= 2:
            await barrier.wait()
        return row

    monkeypatch.setattr(settings_store, "latest", latest_then_wait)
    async with Core.open(backend.settings) as other:
        async with asyncio.timeout(20):
            results = await asyncio.gather(
                core.settings.write(team.admin, KEY, 10, expected_version=0),
                other.settings.write(team.operator, KEY, 20, expected_version=0),
                return_exceptions=True,
            )
    winners = [result for result in results if isinstance(result, SettingView)]
    losers = [result for result in results if isinstance(result, BaseException)]
    assert readers >= 2
    assert len(winners) == 1, results
    assert [type(loser) for loser in losers] == [Conflict], results
    history = await core.settings.history(team.admin, KEY)
    assert [(v.version, v.value) for v in history] == [(1, winners[0].value)]
    assert (await audit_actions(core, team)).count("settings.write") == 1
    assert (await core.audit.verify(team.admin)).ok


BAD_VALUES: list[tuple[str, Any, str]] = [
    (KEY, "5", "integer"),
    (KEY, 5.5, "integer"),
    (KEY, True, "integer"),
    (KEY, None, "integer"),
    (KEY, 0, "at least 1"),
    (KEY, 101, "at most 100"),
    ("notify.smtp_security", "ssl", "one of none, starttls, tls"),
    ("notify.smtp_security", 1, "text"),
    ("notify.smtp_host", "h" * 256, "at most 255"),
    (SECRET, ["not", "text"], "text"),
]


async def test_bad_values_are_rejected_and_nothing_changes(core: Core, team: Team) -> None:
    await core.settings.write(team.admin, KEY, 5, expected_version=0)
    before = await snapshot(core, team)
    for key, value, problem in BAD_VALUES:
        version = 1 if key == KEY else 0
        with pytest.raises(InvalidInput, match=problem) as caught:
            await core.settings.write(team.admin, key, value, expected_version=version)
        assert caught.value.details["key"] == key
    assert await snapshot(core, team) == before


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    [
        (SettingSpec("t.bool", "bool", False, "", ""), [True, False], [1, 0, "true", None]),
        (
            SettingSpec("t.float", "float", 1.0, "", "", minimum=0, maximum=10),
            [0, 2.5, 10],
            [float("nan"), float("inf"), -0.1, 10.5, "1", False],
        ),
    ],
)
async def test_spec_validation_for_types_not_yet_in_the_registry(
    spec: SettingSpec, good: list[Any], bad: list[Any]
) -> None:
    for value in good:
        assert spec.validate(value) == value
    if spec.type == "float":
        assert isinstance(spec.validate(2), float)
    for value in bad:
        with pytest.raises(InvalidInput):
            spec.validate(value)


async def test_permissions_for_writing(core: Core, team: Team) -> None:
    before = await snapshot(core, team)
    with pytest.raises(Forbidden):
        await core.settings.write(team.viewer, KEY, 5, expected_version=0)
    with pytest.raises(Forbidden):
        await core.settings.rollback(team.viewer, KEY, version=0)
    with pytest.raises(Forbidden):
        await core.settings.write(team.operator, SECRET, PLAINTEXT, expected_version=0)
    with pytest.raises(Forbidden):
        await core.settings.rollback(team.operator, SECRET, version=0)
    document = await core.settings.export(team.viewer)
    with pytest.raises(Forbidden):
        await core.settings.import_(team.viewer, document)
    assert await snapshot(core, team) == before
    # The operator may change what is not secret.
    assert (await core.settings.write(team.operator, KEY, 5, expected_version=0)).value == 5


# -- rollback --------------------------------------------------------------------


async def test_rollback_writes_a_new_version_with_the_old_value(core: Core, team: Team) -> None:
    await core.settings.write(team.admin, KEY, 5, expected_version=0)
    await core.settings.write(team.admin, KEY, 9, expected_version=1)

    rolled = await core.settings.rollback(team.operator, KEY, version=1)
    assert (rolled.value, rolled.version, rolled.updated_by) == (5, 3, "otto")
    to_default = await core.settings.rollback(team.admin, KEY, version=0, reason="back to default")
    assert (to_default.value, to_default.version) == (3, 4)

    history = await core.settings.history(team.admin, KEY)
    assert [(v.version, v.value, v.reason) for v in history] == [
        (4, 3, "back to default"),
        (3, 5, "rollback to version 1"),
        (2, 9, ""),
        (1, 5, ""),
    ]
    entries = (await core.audit.list(team.admin, action="settings.rollback")).entries
    assert [(e.details["to_version"], e.details["old"], e.details["new"]) for e in entries] == [
        (0, 5, 3),
        (1, 9, 5),
    ]


async def test_rollback_to_a_missing_version_changes_nothing(core: Core, team: Team) -> None:
    await core.settings.write(team.admin, KEY, 5, expected_version=0)
    before = await snapshot(core, team)
    for version in (2, 5, -1):
        with pytest.raises(NotFound):
            await core.settings.rollback(team.admin, KEY, version=version)
    assert await snapshot(core, team) == before


# -- secrets ---------------------------------------------------------------------


async def test_secrets_are_encrypted_at_rest_and_masked_without_permission(
    core: Core, team: Team
) -> None:
    await core.settings.write(team.admin, SECRET, PLAINTEXT, expected_version=0, reason="relay")
    async with core.db.engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT value, encrypted FROM setting_versions WHERE key = :k"), {"k": SECRET}
            )
        ).one()
        audit_rows = (await conn.execute(text("SELECT details FROM audit_log"))).scalars().all()
    assert PLAINTEXT not in stored.value
    assert stored.encrypted
    assert not any(PLAINTEXT in row for row in audit_rows)

    admin_view = await core.settings.get(team.admin, SECRET)
    assert (admin_view.value, admin_view.masked, admin_view.is_set) == (PLAINTEXT, False, True)
    assert await core.settings.value(SECRET) == PLAINTEXT
    for who in (team.operator, team.viewer):
        view = await core.settings.get(who, SECRET)
        assert (view.value, view.masked, view.is_set, view.version) == (None, True, True, 1)
        listed = {v.key: v for v in await core.settings.list(who)}[SECRET]
        assert (listed.value, listed.masked) == (None, True)
        history = await core.settings.history(who, SECRET)
        assert [(v.version, v.value, v.masked, v.reason) for v in history] == [
            (1, None, True, "relay")
        ]
    admin_history = await core.settings.history(team.admin, SECRET)
    assert [(v.value, v.masked) for v in admin_history] == [(PLAINTEXT, False)]


async def test_secrets_need_the_same_key_to_be_read(
    backend: Backend, core: Core, team: Team
) -> None:
    await core.settings.write(team.admin, SECRET, PLAINTEXT, expected_version=0)
    other_key = backend.settings.model_copy(
        update={"secret_key": SecretStr("another-secret-key-entirely-0123456789")}
    )
    async with Core.open(other_key) as other:
        # The admin sees it masked (and can overwrite it) instead of losing the whole list.
        view = await other.settings.get(team.admin, SECRET)
        assert (view.value, view.masked, view.is_set) == (None, True, True)
        assert len(await other.settings.list(team.viewer)) == len(SETTINGS)
        # Whoever needs the plaintext gets a clear error, never a wrong value.
        with pytest.raises(QuarterdeckError, match="secret key"):
            await other.settings.value(SECRET)
        with pytest.raises(QuarterdeckError, match="secret key"):
            await other.settings.export(team.admin, include_secrets=True)
        # Settings that are not secret stay readable.
        assert (await other.settings.get(team.admin, KEY)).value == 3
        await other.settings.write(team.admin, SECRET, "new", expected_version=1)
        assert await other.settings.value(SECRET) == "new"


async def test_export_leaves_secrets_out_unless_asked(core: Core, team: Team) -> None:
    await core.settings.write(team.admin, SECRET, PLAINTEXT, expected_version=0)
    await core.settings.write(team.admin, KEY, 8, expected_version=0)

    for who in (team.admin, team.operator, team.viewer):
        document = await core.settings.export(who)
        assert document["format"] == "quarterdeck.settings"
        assert document["version"] == 1
        assert SECRET not in document["settings"]
        assert document["settings"][KEY] == 8
        assert set(document["settings"]) == {spec.key for spec in SETTINGS if not spec.secret}
        assert PLAINTEXT not in repr(document)
    for who in (team.operator, team.viewer):
        with pytest.raises(Forbidden):
            await core.settings.export(who, include_secrets=True)
    full = await core.settings.export(team.admin, include_secrets=True)
    assert full["settings"][SECRET] == PLAINTEXT


# -- import ----------------------------------------------------------------------


async def test_import_applies_changes_once(core: Core, team: Team) -> None:
    document = await core.settings.export(team.admin)
    document["settings"].update({KEY: 9, "notify.smtp_host": "mail.example.org"})

    changes = await core.settings.import_(team.operator, document, reason="from staging")
    assert sorted((c.key, c.old, c.new, c.masked) for c in changes) == [
        (KEY, 3, 9, False),
        ("notify.smtp_host", "", "mail.example.org", False),
    ]
    assert await core.settings.values(KEY, "notify.smtp_host") == {
        KEY: 9,
        "notify.smtp_host": "mail.example.org",
    }
    history = await core.settings.history(team.admin, KEY)
    assert [(v.version, v.actor, v.reason) for v in history] == [(1, "otto", "from staging")]
    entries = (await core.audit.list(team.admin, action="settings.import")).entries
    assert len(entries) == 1
    assert sorted((c["key"], c["old"], c["new"]) for c in entries[0].details["changes"]) == [
        (KEY, 3, 9),
        ("notify.smtp_host", "", "mail.example.org"),
    ]

    before = await snapshot(core, team)
    assert await core.settings.import_(team.operator, document) == []
    assert await snapshot(core, team) == before


async def test_import_dry_run_changes_nothing(core: Core, team: Team) -> None:
    document = await core.settings.export(team.admin)
    document["settings"][KEY] = 9
    before = await snapshot(core, team)
    changes = await core.settings.import_(team.admin, document, dry_run=True)
    assert [(c.key, c.old, c.new) for c in changes] == [(KEY, 3, 9)]
    assert await snapshot(core, team) == before


async def test_import_with_one_bad_value_applies_nothing(core: Core, team: Team) -> None:
    document = await core.settings.export(team.admin)
    document["settings"].update(
        {KEY: 9, "notify.smtp_host": "mail.example.org", "collector.interval_seconds": 0}
    )
    before = await snapshot(core, team)
    with pytest.raises(InvalidInput, match=r"collector\.interval_seconds") as caught:
        await core.settings.import_(team.admin, document)
    assert list(caught.value.details["problems"]) == ["collector.interval_seconds"]
    assert await snapshot(core, team) == before


async def test_import_reports_every_problem(core: Core, team: Team) -> None:
    document = await core.settings.export(team.admin)
    document["settings"].update({"no.such.key": 1, KEY: "many", "notify.smtp_security": "ssl"})
    before = await snapshot(core, team)
    with pytest.raises(InvalidInput) as caught:
        await core.settings.import_(team.admin, document)
    problems = caught.value.details["problems"]
    assert problems["no.such.key"] == "unknown setting"
    assert set(problems) == {"no.such.key", KEY, "notify.smtp_security"}
    assert await snapshot(core, team) == before


def _exported(settings: dict[str, Any]) -> dict[str, Any]:
    return {"format": "quarterdeck.settings", "version": 1, "settings": settings}


WRONG_SHAPES: list[Any] = [
    None,
    [],
    "quarterdeck.settings",
    {"settings": {KEY: 9}},
    {**_exported({KEY: 9}), "format": "something.else"},
    {**_exported({KEY: 9}), "version": 2},
    {**_exported({KEY: 9}), "version": "1"},
    {"format": "quarterdeck.settings", "version": 1},
    {**_exported({}), "settings": [[KEY, 9]]},
]


async def test_import_rejects_documents_of_the_wrong_shape(core: Core, team: Team) -> None:
    before = await snapshot(core, team)
    for document in WRONG_SHAPES:
        with pytest.raises(InvalidInput):
            await core.settings.import_(team.admin, copy.deepcopy(document))
    assert await snapshot(core, team) == before


async def test_import_of_secrets_needs_the_permission(core: Core, team: Team) -> None:
    document = _exported({KEY: 9, SECRET: PLAINTEXT})
    before = await snapshot(core, team)
    with pytest.raises(Forbidden):
        await core.settings.import_(team.operator, document)
    assert await snapshot(core, team) == before

    changes = await core.settings.import_(team.admin, document)
    secret_change = next(change for change in changes if change.key == SECRET)
    assert (secret_change.old, secret_change.new, secret_change.masked) == (None, None, True)
    assert await core.settings.value(SECRET) == PLAINTEXT
    entry = (await core.audit.list(team.admin, action="settings.import")).entries[0]
    assert PLAINTEXT not in repr(entry.details)


async def test_export_then_import_round_trips_between_installations(core: Core, team: Team) -> None:
    await core.settings.write(team.admin, KEY, 42, expected_version=0)
    await core.settings.write(team.admin, SECRET, PLAINTEXT, expected_version=0)
    document = await core.settings.export(team.admin, include_secrets=True)
    # Back to defaults, then the export restores everything in one go.
    await core.settings.rollback(team.admin, KEY, version=0)
    await core.settings.rollback(team.admin, SECRET, version=0)
    changes = await core.settings.import_(team.admin, document)
    assert {change.key for change in changes} == {KEY, SECRET}
    assert await core.settings.values(KEY, SECRET) == {KEY: 42, SECRET: PLAINTEXT}


async def test_recent_values_apply_own_writes_at_once_and_others_within_the_ttl(
    core: Core, team: Team
) -> None:
    """`recent` is what hot paths read: one read of every setting, reused for RECENT_TTL."""
    assert await core.settings.recent(KEY) == {KEY: 3}
    await core.settings.write(team.admin, KEY, 4, expected_version=0)
    assert await core.settings.recent(KEY) == {KEY: 4}
    await core.settings.rollback(team.admin, KEY, version=0)
    assert await core.settings.recent(KEY) == {KEY: 3}
    document = {"format": "quarterdeck.settings", "version": 1, "settings": {KEY: 6}}
    await core.settings.import_(team.admin, document)
    assert await core.settings.recent(KEY) == {KEY: 6}

    elsewhere = SettingsService(core.ctx)  # another server instance's service
    await elsewhere.write(team.admin, KEY, 7, expected_version=3)
    assert await core.settings.values(KEY) == {KEY: 7}
    await asyncio.sleep(RECENT_TTL)
    assert await core.settings.recent(KEY, "collector.interval_seconds") == {
        KEY: 7,
        "collector.interval_seconds": 1,
    }


async def test_recent_reads_secrets_afresh(core: Core, team: Team) -> None:
    await core.settings.write(team.admin, SECRET, PLAINTEXT, expected_version=0)
    assert await core.settings.recent(SECRET) == {SECRET: PLAINTEXT}
    await SettingsService(core.ctx).write(team.admin, SECRET, "changed", expected_version=1)
    assert await core.settings.recent(SECRET) == {SECRET: "changed"}
