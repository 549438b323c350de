"""The audit log: newest first, filtered, paged by cursor, and its chain verified."""

from __future__ import annotations

import pytest

from console.client.errors import Forbidden
from console.client.types import AuditQuery
from tests.conftest import PASSWORD
from tests.contract.conftest import Harness

pytestmark = pytest.mark.asyncio


async def test_audit_paging_filters_and_verify(harness: Harness) -> None:
    client = harness.client
    for number in range(5):
        await client.create_user(username=f"user{number}", password=PASSWORD, role="viewer")

    created = AuditQuery(action="users.create", actor="ada")
    first = await client.list_audit(created, limit=2)
    assert [entry.target for entry in first.entries] == ["user4", "user3"]
    assert first.next_cursor is not None
    second = await client.list_audit(created, before_id=first.next_cursor, limit=2)
    assert [entry.target for entry in second.entries] == ["user2", "user1"]
    third = await client.list_audit(created, before_id=second.next_cursor, limit=2)
    assert [entry.target for entry in third.entries] == ["user0"]
    assert third.next_cursor is None
    assert {entry.source for entry in first.entries} <= {"local", "127.0.0.1"}

    found = await client.list_audit(AuditQuery(text="user3"))
    assert [entry.target for entry in found.entries] == ["user3"]
    everything = await client.list_audit(AuditQuery())
    timestamps = [entry.ts for entry in everything.entries]
    middle = timestamps[1]
    window = await client.list_audit(AuditQuery(since=middle - 1e-4, until=middle + 1e-4))
    assert everything.entries[1] in window.entries

    verified = await client.verify_audit()
    assert verified.ok
    assert verified.checked >= 6

    await client.sign_out()
    await client.sign_in("user0", PASSWORD)
    with pytest.raises(Forbidden):
        await client.list_audit(AuditQuery())
    with pytest.raises(Forbidden):
        await client.verify_audit()
