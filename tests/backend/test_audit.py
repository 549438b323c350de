"""Audit: every mutation recorded with its change, a hash chain that exposes tampering, paging."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from backend.core import Core
from backend.domain.audit import AuditEntryView
from backend.domain.errors import Conflict, Forbidden, InvalidInput
from backend.storage import audit as audit_store
from backend.storage.audit import entry_hash
from backend.storage.models import AuditEntry
from tests.backend.conftest import PASSWORD, Backend, Team

pytestmark = pytest.mark.asyncio

KEY = "hosts.down_after_missed"


async def all_entries(core: Core, team: Team) -> list[AuditEntryView]:
    """Oldest first."""
    return list(reversed((await core.audit.list(team.admin, limit=1000)).entries))


async def execute(core: Core, statement: str, **params: Any) -> None:
    """Tamper with the table behind the service's back, as someone with database access could."""
    async with core.db.engine.begin() as conn:
        await conn.execute(text(statement), params)


async def make_entries(core: Core, team: Team, count: int) -> None:
    for version in range(count):
        await core.settings.write(
            team.admin, KEY, version % 50 + 1, expected_version=version, reason=f"step {version}"
        )


async def test_mutations_are_recorded_with_who_what_and_where(core: Core, team: Team) -> None:
    remote = team.operator.with_request(source="203.0.113.7", correlation_id="req-42")
    await core.settings.write(remote, KEY, 5, expected_version=0, reason="tuning")

    entries = await all_entries(core, team)
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("setup", "users.create", "ada"),
        ("ada", "users.create", "otto"),
        ("ada", "users.create", "vera"),
        ("otto", "settings.write", KEY),
    ]
    last = entries[-1]
    assert last.actor_id == team.operator.user_id
    assert (last.source, last.correlation_id) == ("203.0.113.7", "req-42")
    assert last.details == {"version": 1, "reason": "tuning", "old": 3, "new": 5}
    assert entries[1].source == "local"
    assert entries[1].details["role"] == "operator"
    assert [e.ts for e in entries] == sorted(e.ts for e in entries)


async def test_intact_chain_verifies(core: Core, team: Team) -> None:
    await make_entries(core, team, 3)
    result = await core.audit.verify(team.operator)
    assert result.ok
    assert result.checked == len(await all_entries(core, team)) == 6
    assert result.first_broken_id is None


@pytest.mark.parametrize(
    ("column", "forged"),
    [("details", '{"new":99,"old":3,"reason":"step 0","version":1}'), ("actor", "vera")],
)
async def test_an_edited_row_is_found(core: Core, team: Team, column: str, forged: str) -> None:
    await make_entries(core, team, 3)
    victim = (await all_entries(core, team))[3]  # a settings write with entries on both sides
    async with core.db.engine.connect() as conn:
        query = text(f"SELECT {column} FROM audit_log WHERE id = :id")
        stored = (await conn.execute(query, {"id": victim.id})).scalar_one()
    assert stored != forged

    update = f"UPDATE audit_log SET {column} = :v WHERE id = :id"
    await execute(core, update, v=forged, id=victim.id)
    result = await core.audit.verify(team.admin)
    assert not result.ok
    assert result.first_broken_id == victim.id
    assert result.checked == 3
    assert result.problem
    assert "edited" in result.problem

    # Putting the row back as it was makes the chain whole again.
    await execute(core, update, v=stored, id=victim.id)
    assert (await core.audit.verify(team.admin)).ok


async def test_an_edit_with_a_recomputed_hash_is_still_found(core: Core, team: Team) -> None:
    await make_entries(core, team, 3)
    entries = await all_entries(core, team)
    victim, follower = entries[3], entries[4]
    async with core.db.engine.begin() as conn:
        row = (
            await conn.execute(text("SELECT * FROM audit_log WHERE id = :id"), {"id": victim.id})
        ).one()
        forged = AuditEntry(**{**row._asdict(), "actor": "vera"})
        await conn.execute(
            text("UPDATE audit_log SET actor = 'vera', hash = :h WHERE id = :id"),
            {"h": entry_hash(row.prev_hash, forged), "id": victim.id},
        )
    result = await core.audit.verify(team.admin)
    assert not result.ok
    assert result.first_broken_id == follower.id
    assert result.checked == 4


async def test_a_deleted_row_is_found(core: Core, team: Team) -> None:
    await make_entries(core, team, 3)
    entries = await all_entries(core, team)
    await execute(core, "DELETE FROM audit_log WHERE id = :id", id=entries[3].id)
    result = await core.audit.verify(team.admin)
    assert not result.ok
    assert result.first_broken_id == entries[4].id
    assert result.checked == 3
    assert result.problem
    assert "deleted" in result.problem


async def test_deleting_the_first_row_is_found(core: Core, team: Team) -> None:
    entries = await all_entries(core, team)
    await execute(core, "DELETE FROM audit_log WHERE id = :id", id=entries[0].id)
    result = await core.audit.verify(team.admin)
    assert (result.ok, result.first_broken_id, result.checked) == (False, entries[1].id, 0)


async def test_failed_mutations_leave_no_entry(core: Core, team: Team) -> None:
    await core.settings.write(team.admin, KEY, 5, expected_version=0)
    before = await all_entries(core, team)

    with pytest.raises(Conflict):
        await core.settings.write(team.admin, KEY, 6, expected_version=0)
    with pytest.raises(InvalidInput):
        await core.settings.write(team.admin, KEY, 1000, expected_version=1)
    with pytest.raises(Forbidden):
        await core.settings.write(team.viewer, KEY, 6, expected_version=1)
    with pytest.raises(Conflict):
        await core.users.create(team.admin, username="otto", password=PASSWORD, role="viewer")
    with pytest.raises(InvalidInput):
        await core.settings.import_(
            team.admin,
            {"format": "quarterdeck.settings", "version": 1, "settings": {KEY: 7, "x.y": 1}},
        )

    assert await all_entries(core, team) == before
    assert (await core.audit.verify(team.admin)).ok


async def test_the_entry_and_the_change_commit_together(
    core: Core, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the audit entry cannot be written, the change it describes is not kept either."""

    async def broken_append(*_args: Any, **_kwargs: Any) -> AuditEntry:
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit_store, "append", broken_append)
    with pytest.raises(RuntimeError):
        await core.settings.write(team.admin, KEY, 5, expected_version=0)
    with pytest.raises(RuntimeError):
        await core.users.create(team.admin, username="ghost", password=PASSWORD, role="viewer")
    monkeypatch.undo()

    assert (await core.settings.get(team.admin, KEY)).version == 0
    assert "ghost" not in [user.username for user in await core.users.list(team.admin)]


async def test_concurrent_mutations_keep_one_chain(
    backend: Backend, core: Core, team: Team
) -> None:
    keys = ["retention.raw_hours", "retention.1m_days", "retention.10m_days", "retention.1h_days"]
    async with Core.open(backend.settings) as other:
        results = await asyncio.gather(
            *(
                opened.settings.write(team.admin, key, 2, expected_version=0)
                for opened in (core, other)
                for key in keys[:2]
            ),
            *(
                opened.settings.write(team.operator, key, 3, expected_version=0)
                for key, opened in zip(keys[2:], (core, other), strict=True)
            ),
            return_exceptions=True,
        )
    failures = [result for result in results if isinstance(result, BaseException)]
    assert [type(failure) for failure in failures] == [Conflict, Conflict], failures
    result = await core.audit.verify(team.admin)
    assert result.ok
    assert result.checked == 3 + 4  # users, then one success per key
    assert [view.version for view in await core.settings.list(team.admin) if view.key in keys] == [
        1,
        1,
        1,
        1,
    ]


# -- reading ---------------------------------------------------------------------


async def test_paging_walks_newest_first_without_gaps(core: Core, team: Team) -> None:
    await make_entries(core, team, 17)  # 20 entries with the users
    expected = [entry.id for entry in reversed(await all_entries(core, team))]
    assert len(expected) == 20

    for limit in (7, 10, 20, 1):
        seen: list[int] = []
        cursor: int | None = None
        pages = 0
        while True:
            page = await core.audit.list(team.operator, before_id=cursor, limit=limit)
            seen += [entry.id for entry in page.entries]
            pages += 1
            assert len(page.entries) <= limit
            if page.next_cursor is None:
                break
            assert page.next_cursor == page.entries[-1].id
            cursor = page.next_cursor
        assert seen == expected, limit
        assert pages == -(-20 // limit), limit


async def test_filters(core: Core, team: Team) -> None:
    assert team.viewer.user_id is not None
    await core.settings.write(team.admin, "notify.smtp_host", "Relay_1.example", expected_version=0)
    await core.settings.write(team.operator, "notify.smtp_username", "relayX1", expected_version=0)
    await core.settings.rollback(team.operator, "notify.smtp_host", version=0)
    await core.users.update(team.admin, team.viewer.user_id, display_name="Zoë Viewer")
    entries = await all_entries(core, team)
    assert len(entries) == 7
    listing = core.audit.list

    def targets(views: list[AuditEntryView]) -> list[str]:
        return [view.target for view in views]

    by_otto = (await listing(team.admin, actor="otto")).entries
    assert [(e.action, e.actor) for e in by_otto] == [
        ("settings.rollback", "otto"),
        ("settings.write", "otto"),
    ]
    writes = (await listing(team.admin, action="settings.write")).entries
    assert targets(writes) == ["notify.smtp_username", "notify.smtp_host"]
    assert (await listing(team.admin, action="settings.write", actor="ada")).entries == writes[1:]
    assert (await listing(team.admin, action="nothing.like.this")).entries == []

    # since is inclusive, until exclusive.
    window = (await listing(team.admin, since=entries[3].ts, until=entries[5].ts)).entries
    assert window == [entries[4], entries[3]]
    assert (await listing(team.admin, since=entries[-1].ts)).entries == [entries[-1]]
    assert (await listing(team.admin, until=entries[0].ts)).entries == []

    # Text: case-insensitive, in target, details, action and actor; taken literally.
    found = (await listing(team.admin, text="RELAY_1")).entries
    assert [e.action for e in found] == ["settings.rollback", "settings.write"]
    assert targets((await listing(team.admin, text="relayx1")).entries) == ["notify.smtp_username"]
    assert (await listing(team.admin, text="relay%")).entries == []
    assert targets((await listing(team.admin, text="zoë")).entries) == ["vera"]
    assert targets((await listing(team.admin, text="ROLLBACK")).entries) == ["notify.smtp_host"]
    assert len((await listing(team.admin, text="otto")).entries) == 3  # created, and acted twice

    paged = await listing(team.admin, text="relay", limit=2)
    assert paged.next_cursor is not None
    rest = await listing(team.admin, text="relay", before_id=paged.next_cursor, limit=2)
    assert paged.entries + rest.entries == (await listing(team.admin, text="relay")).entries
    assert len(paged.entries + rest.entries) == 3
    assert rest.next_cursor is None


async def test_bad_queries_are_refused(core: Core, team: Team) -> None:
    for limit in (0, -1, 1001):
        with pytest.raises(InvalidInput) as caught:
            await core.audit.list(team.admin, limit=limit)
        assert caught.value.details["field"] == "limit"
    with pytest.raises(InvalidInput):
        await core.audit.list(team.admin, since=200.0, until=100.0)
    assert (await core.audit.list(team.admin, before_id=1)).entries == []


async def test_viewer_cannot_read_the_audit(core: Core, team: Team) -> None:
    with pytest.raises(Forbidden):
        await core.audit.list(team.viewer)
    with pytest.raises(Forbidden):
        await core.audit.verify(team.viewer)
    assert len((await core.audit.list(team.operator)).entries) == 3
    assert (await core.audit.verify(team.operator)).ok


async def test_text_that_is_not_valid_unicode_is_still_audited(core: Core, team: Team) -> None:
    odd = "relay\ud800.example"  # a lone surrogate, as a JSON body may carry
    await core.settings.write(team.admin, "notify.smtp_host", odd, expected_version=0)
    assert await core.settings.value("notify.smtp_host") == odd
    last = (await core.audit.list(team.admin, limit=1)).entries[0]
    assert (last.action, last.details["new"]) == ("settings.write", odd)
    assert (await core.audit.verify(team.admin)).ok
